//! `ztplanectl`'s command line (clap, and zerotier-cli's own switches for its commands): generated
//! help for every command, shell completions, usage errors with exit code 2 and the flag named.
use std::process::{Command, Output};

fn ztplanectl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ztplanectl")).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_for_every_command() {
    for (args, needles) in [
        (&["--help"][..], &["Usage: ztplanectl [OPTIONS] <COMMAND>", "listnetworks", "-DDIR", "serve", "xdp"][..]),
        (&["help"], &["Usage: ztplanectl"]),
        (&["info", "--help"], &["Usage: ztplanectl info [OPTIONS]", "-D <DIR>", "-j"]),
        (&["-D", "/tmp", "info", "-h"], &["Usage: ztplanectl info"]),
        (&["status", "--help"], &["Usage: ztplanectl status"]),
        (&["listnetworks", "-j", "--help"], &["Usage: ztplanectl listnetworks"]),
        (&["listpeers", "--help"], &["Usage: ztplanectl listpeers"]),
        (&["join", "--help"], &["Usage: ztplanectl join [OPTIONS] [NWID]", "16 hex digits"]),
        (&["leave", "--help"], &["Usage: ztplanectl leave [OPTIONS] [NWID]"]),
        (&["serve", "--help"], &["Usage: ztplanectl serve", "--listen <ADDR:PORT>", "--metrics <ADDR:PORT|off>"]),
        (&["decode", "--help"], &["Usage: ztplanectl decode", "--pcap <FILE>", "--identity <PATH>"]),
        (&["policy", "--help"], &["Usage: ztplanectl policy <COMMAND>", "simulate", "check"]),
        (
            &["policy", "simulate", "--help"],
            &["--config [<local.conf>]", "--scenario [<scenario.json>]", "--pretty", "(required)"],
        ),
        (&["policy", "check", "--help"], &["--config [<local.conf>]"]),
        (&["xdp", "--help"], &["Usage: ztplanectl xdp [OPTIONS] <COMMAND>", "--instance <NAME>", "--bpffs <PATH>"]),
        (&["xdp", "stats", "--help"], &["Usage: ztplanectl xdp stats"]),
        (&["xdp", "ports", "--help"], &["list", "add", "remove"]),
        (&["xdp", "ports", "add", "--help"], &["<PORT>"]),
        (&["completions", "--help"], &["<SHELL>"]),
    ] {
        let out = ztplanectl(args);
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out.stderr));
        for needle in needles {
            assert!(stdout.contains(needle), "{args:?}: no {needle:?} in\n{stdout}");
        }
    }
    let out = ztplanectl(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("Usage: ztplanectl"));
}

#[test]
fn completions_for_bash_zsh_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let out = ztplanectl(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        assert!(
            script.contains("ztplanectl") && script.contains("listnetworks") && script.contains("scenario"),
            "{shell}"
        );
    }
}

#[test]
fn usage_errors_exit_2_with_the_flag_named() {
    for (args, needle) in [
        (&["serve", "--listen", "localhost"][..], "'--listen <ADDR:PORT>': not an ADDR:PORT"),
        (&["serve", "--metrics", "on"], "--metrics"),
        (&["serve", "extra"], "'extra'"),
        (&["-j", "serve"], "-j is only for"),
        (&["-D", "/tmp", "policy", "check", "--config", "x"], "-D is only for"),
        (&["decode", "--pcap", "x"], "--identity <PATH>"),
        (&["decode", "--identity", "x"], "--pcap <FILE>"),
        (&["decode", "--pcap", "x", "--identity", "y", "--bogus"], "'--bogus'"),
        (&["policy", "frobnicate"], "'frobnicate'"),
        (&["policy", "check"], "--config is required"),
        (&["xdp", "frobnicate"], "'frobnicate'"),
        (&["xdp", "ports", "add"], "<PORT>"),
        (&["frobnicate"], "'frobnicate'"),
    ] {
        let out = ztplanectl(args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("ztplanectl")).collect();
        assert_eq!(lines.len(), 1, "{args:?}: one `ztplanectl...` line expected in {stderr:?}");
        assert!(lines[0].contains(needle), "{args:?}: {:?} lacks {needle:?}", lines[0]);
    }
    // `usage:` as the hand-written usage lines had it.
    assert!(text(&ztplanectl(&["policy", "frobnicate"]).stderr).contains("usage: ztplanectl policy"));
}

#[test]
fn zerotier_cli_switches_as_zerotier_cli_takes_them() {
    // No node: zerotier-cli's "cannot connect" answer, whatever the place of -D / -DDIR / -j.
    let home = std::env::temp_dir().join(format!("ztplanectl-cli-{}", std::process::id()));
    let home = home.to_str().unwrap();
    let glued = format!("-D{home}");
    for args in [
        &["-D", home, "-j", "info"][..],
        &["info", "-D", home, "-j"],
        &["-j", &glued, "listpeers"],
        &["listnetworks", &glued, "extra", "words"],
        &["-D", home, "status"],
    ] {
        let out = ztplanectl(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out.stderr));
        assert!(text(&out.stdout).starts_with("Error connecting to the ZeroTier service"), "{args:?}");
        assert!(text(&out.stdout).contains(home), "{args:?}: the socket in {home}");
    }
    let out = ztplanectl(&["join", &glued, "8056c2e21c000001", "-j"]);
    assert_eq!((text(&out.stdout).as_str(), out.status.code()), ("0 join connection failed\n", Some(1)));
    // zerotier-cli checks a network ID's length only, on stdout, exit 2.
    let out = ztplanectl(&["-D", home, "join", "123"]);
    assert_eq!((text(&out.stdout).as_str(), out.status.code()), ("invalid network id\n", Some(2)));
    // Unknown switches and a missing -D value: usage errors, exit 2, as before.
    for args in [&["-x", "info"][..], &["info", "-D"]] {
        let out = ztplanectl(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(text(&out.stderr).contains("usage: ztplanectl [-D DIR] [-j]"), "{args:?}");
    }
}

#[test]
fn policy_load_checks_the_file_before_it_reaches_a_node() {
    let dir = std::env::temp_dir().join(format!("ztplanectl-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.conf");
    std::fs::write(&bad, r#"{"settings": {"defaultBondingPolicy": "active-backup", "policies": {"p": {"basePolicy": "balance-rr", "packetsPerLink": -1}}}}"#).unwrap();
    let good = dir.join("good.conf");
    std::fs::write(&good, r#"{"settings": {"defaultBondingPolicy": "balance-xor"}}"#).unwrap();
    let home = dir.to_str().unwrap();
    // Missing --config, and an invalid file: exit 2 with the JSON path; nothing is sent.
    let out = ztplanectl(&["policy", "load", "--home", home]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--config is required"), "{}", text(&out.stderr));
    let out = ztplanectl(&["policy", "load", "--config", bad.to_str().unwrap(), "--home", home]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("settings.policies.p.packetsPerLink"), "{}", text(&out.stderr));
    // A valid file and no node at --home: exit 1, naming the socket.
    let out = ztplanectl(&["policy", "load", "--config", good.to_str().unwrap(), "--home", home]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("ztplane.sock"), "{}", text(&out.stderr));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bond_without_a_node() {
    let dir = std::env::temp_dir().join(format!("ztplanectl-bond-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bpffs = dir.to_str().unwrap();
    for args in [&["bond", "--help"][..], &["bond", "show", "--help"], &["bond", "rotate", "--help"]] {
        let out = ztplanectl(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(text(&out.stdout).contains("Usage: ztplanectl bond"), "{args:?}");
    }
    assert!(text(&ztplanectl(&["bond", "--help"]).stdout).contains("--instance <NAME>"));
    // No instance at --bpffs: exit 1, naming the map it looked for.
    for args in [&["bond", "list", "--bpffs", bpffs][..], &["-j", "bond", "show", "0123456789", "--bpffs", bpffs]] {
        let out = ztplanectl(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(&format!("no link quality map at {bpffs}/default/link_quality")), "{stderr}");
        assert!(stderr.contains("is ztplane running?"), "{stderr}");
    }
    // rotate asks the node: none at --home, exit 1 naming the socket.
    let out = ztplanectl(&["bond", "rotate", "0123456789", "--home", bpffs]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains(&format!("no node answers at {bpffs}/ztplane.sock")), "{}", text(&out.stderr));
    // A bad address and misplaced switches are usage errors: exit 2, one line naming the problem.
    for (args, needle) in [
        (&["bond", "show", "12345"][..], "not a ZeroTier address"),
        (&["bond", "rotate", "zzzzzzzzzz"], "not a ZeroTier address"),
        (&["bond", "show"], "<PEER>"),
        (&["bond", "frobnicate"], "'frobnicate'"),
        (&["-D", "/tmp", "bond", "list"], "-D is only for"),
    ] {
        let out = ztplanectl(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.lines().next().is_some_and(|l| l.starts_with("ztplanectl") && l.contains(needle)),
            "{args:?}: {stderr}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
