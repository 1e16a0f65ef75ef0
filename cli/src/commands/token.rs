//! `wasmesos token create|revoke`, `wasmesos tokens` and `wasmesos
//! whoami`: bearer tokens, which every call to the master carries. A
//! token's secret is printed once, at creation; the master keeps only its
//! hash.

use std::process::ExitCode;

use anyhow::anyhow;
use wasmesos_api::proto::{
    CreateTokenRequest, ListTokensRequest, RevokeTokenRequest, Token, TokenKind, WhoAmIRequest,
};

use crate::client::{MasterArg, connect, failed};
use crate::format::{Table, ago, parse_duration};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Issue a token (operators only) and print it, once.
    Create {
        /// The tenant it acts for (default: the operators' "default").
        tenant: Option<String>,
        /// tenant (acts within its tenant), operator (everything), or
        /// agent (attaches agents, nothing else).
        #[arg(long, default_value = "tenant", value_parser = kind_arg)]
        kind: TokenKind,
        /// What it is for, shown in listings and logs ("ci").
        #[arg(long, default_value = "")]
        name: String,
        /// Expires after this long (e.g. 12h, 30d); default: never.
        #[arg(long, value_parser = parse_duration)]
        ttl: Option<std::time::Duration>,
        #[command(flatten)]
        master: MasterArg,
    },
    /// Revoke a token at once (operators only).
    Revoke {
        /// Its id (`wasmesos tokens` lists them).
        id: String,
        #[command(flatten)]
        master: MasterArg,
    },
}

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Only this tenant's.
    #[arg(long)]
    pub tenant: Option<String>,
    #[command(flatten)]
    pub master: MasterArg,
}

#[derive(clap::Args, Debug)]
pub struct WhoAmIArgs {
    #[command(flatten)]
    pub master: MasterArg,
}

fn kind_arg(text: &str) -> Result<TokenKind, String> {
    match text {
        "tenant" => Ok(TokenKind::Tenant),
        "operator" => Ok(TokenKind::Operator),
        "agent" => Ok(TokenKind::Agent),
        _ => Err(format!(
            "unknown token kind '{text}': expected tenant, operator or agent"
        )),
    }
}

fn kind_name(kind: TokenKind) -> &'static str {
    match kind {
        TokenKind::Operator => "operator",
        TokenKind::Agent => "agent",
        TokenKind::Tenant | TokenKind::Unspecified => "tenant",
    }
}

fn state(t: &Token) -> String {
    if t.revoked_ms != 0 {
        format!("revoked {}", ago(t.revoked_ms))
    } else if t.expires_ms != 0 && t.expires_ms <= wasmesos_api::now_ms() {
        "expired".into()
    } else if t.expires_ms != 0 {
        let left = t.expires_ms - wasmesos_api::now_ms();
        format!(
            "expires in {}",
            crate::format::duration_ms(left - left % 1000)
        )
    } else {
        "valid".into()
    }
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.action {
        Action::Create {
            tenant,
            kind,
            name,
            ttl,
            master,
        } => {
            let mut client = connect(&master).await?;
            let created = client
                .create_token(CreateTokenRequest {
                    tenant: tenant.unwrap_or_default(),
                    kind: kind as i32,
                    name,
                    ttl_seconds: ttl.map_or(0, |d| d.as_secs().max(1)),
                })
                .await
                .map_err(failed)?
                .into_inner();
            let token = created
                .token
                .ok_or_else(|| anyhow!("the master answered without the token's record"))?;
            // The secret alone on stdout, so that `> file` captures it.
            println!("{}", created.secret);
            eprintln!(
                "token {} ({} of tenant {}, {}): shown once; keep it secret",
                token.id,
                kind_name(token.kind()),
                token.tenant,
                state(&token)
            );
        }
        Action::Revoke { id, master } => {
            let mut client = connect(&master).await?;
            let token = client
                .revoke_token(RevokeTokenRequest { id })
                .await
                .map_err(failed)?
                .into_inner();
            println!("token {} {}", token.id, state(&token));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let mut client = connect(&args.master).await?;
    let tokens = client
        .list_tokens(ListTokensRequest {
            tenant: args.tenant.unwrap_or_default(),
        })
        .await
        .map_err(failed)?
        .into_inner()
        .tokens;
    let mut table = Table::new(&["ID", "TENANT", "KIND", "NAME", "STATE", "CREATED", "BY"]);
    for t in &tokens {
        table.row(vec![
            t.id.clone(),
            t.tenant.clone(),
            kind_name(t.kind()).into(),
            if t.name.is_empty() {
                "-".into()
            } else {
                t.name.clone()
            },
            state(t),
            ago(t.created_ms),
            t.created_by.clone(),
        ]);
    }
    print!("{}", table.render());
    Ok(ExitCode::SUCCESS)
}

pub async fn whoami(args: WhoAmIArgs) -> anyhow::Result<ExitCode> {
    let mut client = connect(&args.master).await?;
    let me = client
        .who_am_i(WhoAmIRequest {})
        .await
        .map_err(failed)?
        .into_inner();
    println!("{}", me.name);
    println!("  tenant  {}", me.tenant);
    println!("  kind    {}", kind_name(me.kind()));
    println!(
        "  roles   {}",
        if me.roles.is_empty() {
            "any".to_string()
        } else {
            me.roles.join(",")
        }
    );
    Ok(ExitCode::SUCCESS)
}
