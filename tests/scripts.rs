//! scripts/demo and scripts/tour echo each command they run; a reader copies
//! them, so each echoed line must be a command a shell reads back to the
//! same words. This runs each script's own `show` function (and the
//! `quote` it uses) in bash, without building or starting anything.

use std::process::Command;

/// Words that need quoting in a shell, and ones that do not.
const WORDS: &[&str] = &[
    "publish",
    "echo",
    "Hello from pulpo",
    "it's",
    r#"{"width": 640}"#,
    "",
    "a$b `c` \\d",
    "x&y;z|w*",
    "source=demo",
];

/// What `show pulpo WORDS...` prints with the functions of `script`, and the
/// words a shell reads back from that line (printed one per NUL).
fn shown_and_read_back(script: &str) -> (String, Vec<String>) {
    let path = format!("{}/scripts/{script}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let functions: String = text
        .lines()
        .filter(|line| line.starts_with("quote() ") || line.starts_with("show() "))
        .map(|line| format!("{line}\n"))
        .collect();
    assert_eq!(
        functions.lines().count(),
        2,
        "{script} defines quote() and show() on one line each"
    );
    let program = format!(
        "{functions}\nline=$(show pulpo \"$@\")\nprintf '%s\\n' \"$line\"\n\
         words() {{ shift; printf '%s\\0' \"$@\"; }}\n\
         eval \"words ${{line#*\\$ }}\" >&2"
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&program)
        .arg("bash")
        .args(WORDS)
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read_back = out
        .stderr
        .split(|&b| b == 0)
        .map(|word| String::from_utf8(word.to_vec()).unwrap())
        .collect::<Vec<_>>();
    // printf '%s\0' ends every word with a NUL: the last piece is empty.
    let read_back = read_back[..read_back.len() - 1].to_vec();
    (String::from_utf8(out.stdout).unwrap(), read_back)
}

#[test]
fn demo_and_tour_echo_commands_that_can_be_pasted() {
    for script in ["demo", "tour"] {
        let (shown, read_back) = shown_and_read_back(script);
        assert_eq!(read_back, WORDS, "{script} showed {shown:?}");
        assert!(
            shown.contains("$ pulpo publish echo 'Hello from pulpo' "),
            "{script}: {shown:?}"
        );
        assert!(shown.contains(" source=demo"), "plain words stay bare: {shown:?}");
        let text =
            std::fs::read_to_string(format!("{}/scripts/{script}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        assert!(
            text.lines().any(|line| line.starts_with("run() { show ")),
            "{script}'s run() echoes through show"
        );
    }
}
