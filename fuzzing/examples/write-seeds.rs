//! Writes the fuzz targets' starting inputs as files, the corpus layout
//! `cargo fuzz` reads: `write-seeds DIR` fills `DIR/module/` and
//! `DIR/request/` (files named by the digest of their bytes).

use std::path::PathBuf;

use wasmesos_api::Digest;
use wasmesos_fuzzing::{module, request};

fn main() -> std::io::Result<()> {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: write-seeds DIR");
        std::process::exit(2);
    };
    let targets = [
        (
            "module",
            module::seeds()
                .into_iter()
                .map(|(_, b)| b)
                .collect::<Vec<_>>(),
        ),
        ("request", request::seeds()),
    ];
    for (target, inputs) in targets {
        let out = dir.join(target);
        std::fs::create_dir_all(&out)?;
        for bytes in &inputs {
            let name = Digest::of(bytes).to_string().replace("sha256:", "seed-");
            std::fs::write(out.join(&name[..21]), bytes)?;
        }
        println!("{}: {} seeds", out.display(), inputs.len());
    }
    Ok(())
}
