//! The `ils-edge` binary: parses the command line and hands over to the library.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use ils_edge::cli::{Cli, Command};
use ils_edge::commands::{generate, import, ops, route_test};
use ils_edge::config::Config;
use ils_edge::{EXIT_FAILURE, EXIT_USAGE, app};

/// mimalloc: per-thread free lists and no heap trimming, so the proxy's many short-lived
/// per-message allocations neither contend nor fault pages back in (docs/PERFORMANCE.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config } => {
            let cfg = match Config::read(&config) {
                Ok(c) => c,
                Err(errs) => return usage(errs),
            };
            if let Err(e) = app::init_tracing(&cli.log) {
                return usage(e);
            }
            match app::run_blocking(cfg) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "ils-edge stopped on an error");
                    eprintln!("ils-edge: {e:#}");
                    ExitCode::from(EXIT_FAILURE)
                }
            }
        }
        Command::CheckConfig { file } => match Config::read(&file) {
            Ok(_) => {
                println!("{}: ok", file.display());
                ExitCode::SUCCESS
            }
            Err(errs) => usage(errs),
        },
        Command::RouteTest {
            config,
            admin,
            from,
            learned,
            dest_route_string,
            json,
            uri,
        } => {
            let result = match admin {
                Some(addr) => {
                    let mut path = format!(
                        "/route-test?from={}&uri={}",
                        ils_edge::admin::encode(&from),
                        ils_edge::admin::encode(&uri)
                    );
                    if let Some(d) = &dest_route_string {
                        path.push_str(&format!(
                            "&dest_route_string={}",
                            ils_edge::admin::encode(d)
                        ));
                    }
                    ils_edge::admin::fetch(addr, &path)
                        .and_then(|body| serde_json::from_str(&body).map_err(|e| e.to_string()))
                }
                None => match Config::read(&config) {
                    Ok(cfg) => route_test::run(
                        cfg,
                        &from,
                        &uri,
                        learned.as_deref(),
                        dest_route_string.as_deref(),
                    )
                    .map(|o| o.to_json()),
                    Err(errs) => return usage(errs),
                },
            };
            match result {
                Ok(v) if json => print_out(v.to_string() + "\n"),
                Ok(v) => print_out(route_test::render_text(&v)),
                Err(e) => usage(format!("route-test: {e}")),
            }
        }
        Command::Peers { admin, json } => {
            match ops::admin_addr(&admin).and_then(|a| ops::peers(a, json)) {
                Ok(out) => print_out(out),
                Err(e) => failure(format!("peers: {e}")),
            }
        }
        Command::Learned {
            admin,
            filter,
            origin,
            route_string,
            limit,
            json,
        } => {
            match ops::admin_addr(&admin).and_then(|a| {
                ops::learned(
                    a,
                    filter.as_deref(),
                    origin.as_deref(),
                    route_string.as_deref(),
                    limit,
                    json,
                )
            }) {
                Ok(out) => print_out(out),
                Err(e) => failure(format!("learned: {e}")),
            }
        }
        Command::ImportCatalog {
            config,
            name,
            route_string,
            no_reload,
            file,
        } => {
            let cfg = match Config::read(&config) {
                Ok(c) => c,
                Err(errs) => return usage(errs),
            };
            let done = match import::import(&cfg, &name, route_string.as_deref(), &file) {
                Ok(done) => done,
                Err(e) => return usage(format!("import-catalog: {e}")),
            };
            println!(
                "catalog {name}: {} URIs installed in {}",
                done.rows,
                done.path.display()
            );
            match cfg.admin.filter(|_| !no_reload) {
                Some(addr) => match ils_edge::admin::post(addr, "/reload") {
                    Ok(_) => println!("the edge at {addr} is reloading and advertising it"),
                    Err(e) => println!(
                        "not reloaded ({e}): the edge picks it up at its next start or SIGHUP"
                    ),
                },
                None => println!("the edge picks it up at its next start or SIGHUP"),
            }
            ExitCode::SUCCESS
        }
        Command::GenerateDirectory {
            count,
            domain,
            partition,
            first_dn,
            advertise,
            out,
        } => {
            let result = match out {
                Some(path) => std::fs::File::create(&path).and_then(|f| {
                    let mut w = std::io::BufWriter::new(f);
                    generate::write_directory(
                        &mut w, count, &domain, &partition, first_dn, advertise,
                    )?;
                    w.flush()
                }),
                None => generate::write_directory(
                    &mut std::io::stdout().lock(),
                    count,
                    &domain,
                    &partition,
                    first_dn,
                    advertise,
                ),
            };
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => failure(format!("generate-directory: {e}")),
            }
        }
    }
}

fn print_out(text: String) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    ExitCode::SUCCESS
}

fn usage(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("{e}");
    ExitCode::from(EXIT_USAGE)
}

fn failure(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("{e}");
    ExitCode::from(EXIT_FAILURE)
}
