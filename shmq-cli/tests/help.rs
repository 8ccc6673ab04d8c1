//! The help, the usage errors, completions and the man page, pinned.
//!
//! The help texts are compared with `tests/snapshots/*.txt`; after a
//! deliberate change, `SHMQ_BLESS=1 cargo test -p shmq-cli --test help`
//! rewrites them (review the diff).

mod common;

use std::path::PathBuf;

use common::*;

fn snapshot(name: &str, got: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.txt"));
    if std::env::var_os("SHMQ_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (SHMQ_BLESS=1 writes it)", path.display()));
    assert!(
        want == got,
        "{name} changed (SHMQ_BLESS=1 to accept):\n--- want\n{want}\n--- got\n{got}"
    );
}

const VERBS: &[&[&str]] = &[
    &["create"],
    &["stat"],
    &["ls"],
    &["inspect"],
    &["peek"],
    &["send"],
    &["recv"],
    &["ack"],
    &["nack"],
    &["extend"],
    &["dlq", "list"],
    &["dlq", "peek"],
    &["dlq", "redrive"],
    &["dlq", "purge"],
    &["purge"],
    &["rm"],
    &["recover"],
    &["completions"],
    &["man"],
];

#[test]
fn help_is_pinned_and_the_exit_table_is_in_shmq_help_only() {
    let top = ok(&["--help"]);
    snapshot("help", &top);
    for n in 0..=11 {
        assert!(top.contains(&format!("\n  {n} ")), "code {n} in:\n{top}");
    }
    for verb in VERBS {
        let mut args = verb.to_vec();
        args.push("--help");
        let help = ok(&args);
        assert!(
            !help.contains("Exit status"),
            "{verb:?} repeats the exit table"
        );
        snapshot(&verb.join("-"), &help);
    }
}

#[test]
fn every_printing_command_has_json() {
    for verb in VERBS {
        if matches!(verb[0], "completions" | "man") {
            continue;
        }
        let mut args = verb.to_vec();
        args.push("--help");
        assert!(ok(&args).contains("--json"), "{verb:?} has no --json");
    }
}

#[test]
fn every_range_is_in_the_help() {
    let create = ok(&["create", "--help"]);
    for range in [
        "1 ..= 16777216",
        "8 ..= 16777216",
        "1 ..= 65535",
        "1ms ..= 12h",
    ] {
        assert!(create.contains(range), "create --help lacks {range}");
    }
    assert!(ok(&["send", "--help"]).contains("0 ..= 12h"));
    assert!(ok(&["nack", "--help"]).contains("0 ..= 12h"));
    assert!(ok(&["extend", "--help"]).contains("1ms ..= 12h"));
    let recv = ok(&["recv", "--help"]);
    assert!(recv.contains("1ms ..= 12h") && recv.contains("0 ..= 12h"));
    assert!(ok(&["stat", "--help"]).contains("10ms ..= 1h"));
}

#[test]
fn usage_errors_have_the_one_prefix_and_exit_2() {
    for (args, first_line) in [
        (
            vec!["frobnicate"],
            "shmq: unrecognized subcommand 'frobnicate'",
        ),
        (
            vec!["recv", "q", "--wait", "5"],
            "shmq: invalid value '5' for '--wait <DURATION>': \"5\": 5 has no unit; write it like 250ms, 1.5s, 1m30s or 2h",
        ),
        (
            vec!["recv", "q", "--visibility", "13h"],
            "shmq: invalid value '13h' for '--visibility <DURATION>': 13h is out of range; it must be 1ms ..= 12h",
        ),
        (
            vec!["ack", "q", "not-a-receipt"],
            "shmq: invalid value 'not-a-receipt' for '<RECEIPT>': ",
        ),
        (
            vec!["dlq", "redrive", "q"],
            "shmq: the following required arguments were not provided:",
        ),
        (
            vec!["recv", "q", "--follow"],
            "shmq: --count and --follow need --json or --lines (raw payloads have no boundaries); add one",
        ),
        (vec!["dlq"], "Dead letters: list, peek, redrive or purge them"),
        (vec![], "Operate shmq queue files"),
        (vec!["recv"], "shmq: the following required arguments were not provided:"),
        (
            vec!["recv", "q", "--count", "0", "--json"],
            "shmq: invalid value '0' for '--count <N>': 0 is not in 1..",
        ),
    ] {
        let o = shmq(&args);
        let err = stderr(&o);
        assert_eq!(code(&o), 2, "{args:?}: {err}");
        assert!(o.stdout.is_empty(), "{args:?}");
        assert!(
            err.lines().next().unwrap().starts_with(first_line),
            "{args:?}:\n{err}"
        );
        assert!(
            !err.lines().any(|l| l.starts_with("error")),
            "one prefix: {err}"
        );
    }
}

#[test]
fn completions_and_the_man_page_come_from_the_command_tree() {
    let bash = ok(&["completions", "bash"]);
    assert!(
        bash.contains("_shmq()") && bash.contains("--visibility"),
        "bash"
    );
    assert!(ok(&["completions", "zsh"]).contains("#compdef shmq"));
    assert!(ok(&["completions", "fish"]).contains("complete -c shmq"));
    assert_eq!(code(&shmq(&["completions", "tcsh"])), 2);
    let man = ok(&["man"]);
    assert!(man.starts_with(".ie") || man.contains(".TH shmq"), "{man}");
    for verb in ["recv", "stat", "ls", "purge", "rm", "Exit status"] {
        assert!(man.contains(verb), "the man page lacks {verb}");
    }
    let recv = ok(&["man", "dlq", "list"]);
    assert!(recv.contains(".TH shmq-dlq-list 1"), "{recv}");
    assert!(recv.contains("shmq dlq list"), "{recv}");
    assert_eq!(code(&shmq(&["man", "bogus"])), 2);
    let dir = tempfile::tempdir().unwrap();
    ok(&["man", "--dir", dir.path().to_str().unwrap()]);
    for page in ["shmq.1", "shmq-recv.1", "shmq-dlq-redrive.1"] {
        assert!(dir.path().join(page).exists(), "{page}");
    }
}
