//! How `ztplane` and `ztplanectl` report their command lines' errors, the same way in both.

/// A clap error as one line: its first paragraph (the problem and the flag it concerns) with its
/// lines joined.
pub fn clap_error_line(err: &clap::Error) -> String {
    let text = err.render().to_string();
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    let first = text.split("\n\n").next().unwrap_or_default();
    first.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

/// Prints what clap stopped on and returns the exit code: help and version on stdout, 0; a usage
/// error as one `PROGRAM: ...` line naming the flag (clap's message), then clap's hints and usage
/// line, 2.
pub fn clap_exit(program: &str, err: &clap::Error) -> u8 {
    use clap::error::ErrorKind;
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = err.print();
        }
        _ => {
            let text = err.render().to_string();
            let rest = text.find("\n\n").map_or(String::new(), |i| text[i..].replace("\nUsage: ", "\nusage: "));
            eprint!("{program}: {}{rest}", clap_error_line(err));
            if !rest.ends_with('\n') {
                eprintln!();
            }
        }
    }
    if err.use_stderr() { 2 } else { 0 }
}
