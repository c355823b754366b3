//! The `ils-edge` binary: parses the command line and hands over to the library.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use ils_edge::cli::{Cli, Command};
use ils_edge::commands::{generate, route_test};
use ils_edge::config::Config;
use ils_edge::{EXIT_FAILURE, EXIT_USAGE};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => match Config::read(&file) {
            Ok(_) => {
                println!("{}: ok", file.display());
                ExitCode::SUCCESS
            }
            Err(errs) => {
                eprintln!("{errs}");
                ExitCode::from(EXIT_USAGE)
            }
        },
        Command::RouteTest {
            config,
            from,
            learned,
            dest_route_string,
            json,
            uri,
        } => {
            let cfg = match Config::read(&config) {
                Ok(c) => c,
                Err(errs) => {
                    eprintln!("{errs}");
                    return ExitCode::from(EXIT_USAGE);
                }
            };
            match route_test::run(
                cfg,
                &from,
                &uri,
                learned.as_deref(),
                dest_route_string.as_deref(),
            ) {
                Ok(outcome) if json => {
                    println!("{}", outcome.to_json());
                    ExitCode::SUCCESS
                }
                Ok(outcome) => {
                    print!("{}", outcome.to_text());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("route-test: {e}");
                    ExitCode::from(EXIT_USAGE)
                }
            }
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
                Err(e) => {
                    eprintln!("generate-directory: {e}");
                    ExitCode::from(EXIT_FAILURE)
                }
            }
        }
    }
}
