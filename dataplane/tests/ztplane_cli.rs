//! `ztplane`'s command line (clap): generated help for every command, shell completions, and a bad
//! value refused before anything starts with one `ztplane: ...` line naming the flag and exit code
//! 2. Needs no privileges: nothing here gets as far as touching an interface.
use std::process::{Command, Output};

fn ztplane(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ztplane")).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_for_every_command() {
    for (args, needles) in [
        (&["--help"][..], &["Usage: ztplane <COMMAND>", "node", "fwd", "completions"][..]),
        (&["help"], &["Usage: ztplane <COMMAND>"]),
        (&["-h"], &["Usage: ztplane <COMMAND>"]),
        (
            &["node", "--help"],
            &[
                "Usage: ztplane node [OPTIONS]",
                "--home <DIR>",
                "default /var/lib/zerotier-one",
                "--iface <IF>",
                "--join <NWID>",
                "16 hex digits",
                "--port <N>",
                "settings.primaryPort",
                "--queues <LIST>",
                "--cores <LIST>",
                "--umem-frames <N>",
                "--ring-size <N>",
                "power of two",
                "--xdp-mode <MODE>",
                "--zero-copy <MODE>",
                "--bpffs <PATH>",
                "--instance <NAME>",
                "--tap-offload <MODE>",
                "split: segments only",
                "--duration <SECS>",
                "--ready-file <PATH>",
            ],
        ),
        (&["node", "-h"], &["Usage: ztplane node [OPTIONS]"]),
        (&["help", "node"], &["Usage: ztplane node [OPTIONS]"]),
        (&["node", "--iface", "a0", "--help"], &["Usage: ztplane node [OPTIONS]"]),
        (
            &["fwd", "--help"],
            &[
                "Usage: ztplane fwd [OPTIONS]",
                "exactly two",
                "--frame-size <N>",
                "2048 or 4096",
                "--xdp-mode <MODE>",
                "auto (native, else generic)",
                "--port <N>",
                "repeatable (default 9993)",
                "--stats-interval <S>",
                "--stats-json <PATH>",
                "--ready-file <PATH>",
            ],
        ),
        (&["completions", "--help"], &["Usage: ztplane completions <SHELL>", "bash", "zsh", "fish"]),
    ] {
        let out = ztplane(args);
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out.stderr));
        for needle in needles {
            assert!(stdout.contains(needle), "{args:?}: no {needle:?} in\n{stdout}");
        }
    }
    // Nothing at all: the help on stderr, a usage error.
    let out = ztplane(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("Usage: ztplane <COMMAND>"));
}

#[test]
fn completions_for_bash_zsh_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let out = ztplane(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        assert!(
            script.contains("ztplane") && script.contains("ring-size") && script.contains("tap-offload"),
            "{shell}"
        );
    }
    let out = ztplane(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn bad_values_exit_2_with_the_flag_named() {
    for (args, needle) in [
        (&["node", "--home", "/tmp", "--iface", "a", "--ring-size", "3"][..], "--ring-size 3 (a power of two)"),
        (&["node", "--home", "/tmp", "--iface", "a", "--umem-frames", "8"], "--umem-frames 8"),
        (&["node", "--home", "/tmp", "--iface", "a", "--join", "12"], "--join <NWID>"),
        (&["node", "--home", "/tmp", "--iface", "a", "--join", "0000000000000000"], "not 0"),
        (&["node", "--home", "/tmp", "--iface", "a", "--port", "x"], "--port <N>"),
        (&["node", "--home", "/tmp", "--iface", "a", "--tap-offload", "maybe"], "--tap-offload <MODE>"),
        (&["node", "--home", "/tmp", "--iface", "a", "--duration"], "--duration <SECS>"),
        (&["node", "--home", "/tmp", "--iface", "a", "--iface", "a"], "--iface is given twice"),
        (&["node", "--home", "/tmp"], "at least one --iface"),
        (&["node", "--iface", "a", "--bogus", "1"], "'--bogus'"),
        (&["fwd", "--iface", "a", "--iface", "b", "--ring-size", "3"], "--ring-size 3 must be a power of two"),
        (&["fwd", "--iface", "a"], "exactly two --iface"),
        (&["fwd", "--iface", "a", "--iface", "b", "--queues", "3-1"], "--queues <LIST>"),
        (&["fwd", "--iface", "a", "--iface", "b", "--xdp-mode", "turbo"], "--xdp-mode <MODE>"),
        (&["fwd", "--iface", "a", "--iface", "b", "--instance", "../x"], "--instance"),
        (&["bogus"], "'bogus'"),
    ] {
        let out = ztplane(args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("ztplane: ")).collect();
        assert_eq!(lines.len(), 1, "{args:?}: one `ztplane:` line expected in {stderr:?}");
        assert!(lines[0].contains(needle), "{args:?}: {:?} lacks {needle:?}", lines[0]);
    }
}
