//! `hello`: a small WASI preview 1 task that tests use to exercise an
//! agent's runtime. It prints `hello from wasmesos!`, then each argument
//! (`arg: …`, without argv[0]) and each environment variable (`env: K=V`,
//! sorted) to stdout, then acts on its flags in this order:
//!
//! - `--stderr TEXT`    write TEXT (and a newline) to stderr
//! - `--write FILE`     write a file in the current directory (the
//!   sandbox), read it back and print its content
//! - `--print-lines N`  print N numbered lines (`line 1` … `line N`)
//! - `--alloc-mib N`    allocate and touch N MiB of memory
//! - `--sleep-ms N`     sleep N milliseconds, printing nothing
//! - `--spin`           loop forever (for fuel and time limits)
//! - `--trap`           trap with `unreachable`
//! - `--exit N`         exit with code N (default 0)
//!
//! Other arguments are only printed; an unknown `--flag` is an error
//! (exit code 2).

use std::io::Write;
use std::process::ExitCode;

#[derive(Default)]
struct Flags {
    exit: u8,
    sleep_ms: u64,
    stderr: Option<String>,
    trap: bool,
    spin: bool,
    alloc_mib: usize,
    write: Option<String>,
    print_lines: u64,
}

fn parse(args: &[String]) -> Result<Flags, String> {
    let mut f = Flags::default();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let number = |v: &String| {
            v.parse()
                .map_err(|_| format!("{flag}: {v:?} is not a number"))
        };
        match flag.as_str() {
            "--exit" => {
                f.exit = value()
                    .and_then(|v| v.parse().map_err(|_| format!("--exit: {v:?} is not 0-255")))?
            }
            "--sleep-ms" => f.sleep_ms = number(value()?)?,
            "--stderr" => f.stderr = Some(value()?.clone()),
            "--trap" => f.trap = true,
            "--spin" => f.spin = true,
            "--alloc-mib" => f.alloc_mib = number(value()?)? as usize,
            "--write" => f.write = Some(value()?.clone()),
            "--print-lines" => f.print_lines = number(value()?)?,
            other if other.starts_with("--") => return Err(format!("unknown flag {other:?}")),
            _ => {} // a plain argument: printed above, nothing to do
        }
    }
    Ok(f)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    println!("hello from wasmesos!");
    for arg in &args {
        println!("arg: {arg}");
    }
    let mut env: Vec<(String, String)> = std::env::vars().collect();
    env.sort();
    for (k, v) in &env {
        println!("env: {k}={v}");
    }
    let flags = match parse(&args) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("hello: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&flags) {
        Ok(()) => ExitCode::from(flags.exit),
        Err(e) => {
            eprintln!("hello: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(f: &Flags) -> std::io::Result<()> {
    if let Some(text) = &f.stderr {
        writeln!(std::io::stderr(), "{text}")?;
    }
    if let Some(file) = &f.write {
        std::fs::write(file, format!("written to {file} by hello\n"))?;
        print!("{}", std::fs::read_to_string(file)?);
    }
    let mut out = std::io::stdout().lock();
    for i in 1..=f.print_lines {
        writeln!(out, "line {i}")?;
    }
    out.flush()?;
    drop(out);
    if f.alloc_mib > 0 {
        alloc_and_touch(f.alloc_mib);
        println!("allocated {} MiB", f.alloc_mib);
    }
    if f.sleep_ms > 0 {
        std::thread::sleep(std::time::Duration::from_millis(f.sleep_ms));
    }
    if f.spin {
        spin();
    }
    if f.trap {
        trap();
    }
    Ok(())
}

/// Writes one byte per 4 KiB page so the memory is really committed.
fn alloc_and_touch(mib: usize) {
    let mut block = vec![0u8; mib << 20];
    for page in block.chunks_mut(4096) {
        page[0] = 1;
    }
    std::hint::black_box(&block);
}

fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        // black_box keeps the optimiser from proving the loop does nothing.
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

/// A real wasm trap, not a panic: the runtime must report it as one.
#[cfg(target_arch = "wasm32")]
fn trap() -> ! {
    core::arch::wasm32::unreachable()
}

#[cfg(not(target_arch = "wasm32"))]
fn trap() -> ! {
    std::process::abort()
}
