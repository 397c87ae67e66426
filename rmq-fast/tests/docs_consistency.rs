//! The documents agree with each other and with the code: README.md and docs/architecture.md
//! list the same crates with the same descriptions, and every `docs/protocol.md §N` cited in
//! the sources names a section that docs/protocol.md has (no citation of a document outside
//! the repository).

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// (folder, crate, what it owns) of the table whose header starts with `| folder | crate |`.
fn crate_rows(doc: &str) -> Vec<[String; 3]> {
    let lines: Vec<&str> = doc.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with("| folder | crate |"))
        .expect("a crate table");
    lines[start + 2..]
        .iter()
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<String> = l.split('|').map(|c| c.trim().to_string()).collect();
            [cells[1].clone(), cells[2].clone(), cells[3].clone()]
        })
        .collect()
}

#[test]
fn readme_and_architecture_list_the_same_crates() {
    let readme = crate_rows(&read("README.md"));
    let architecture = crate_rows(&read("docs/architecture.md"));
    assert!(readme.len() >= 9, "{readme:?}");
    assert_eq!(readme, architecture);
    let manifest = read("Cargo.toml");
    let members_line = manifest
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .expect("a members list in Cargo.toml");
    let members: Vec<&str> = members_line.split('"').skip(1).step_by(2).collect();
    assert!(members.len() >= 9, "{members:?}");
    for member in members {
        assert!(
            readme.iter().any(|row| row[0] == format!("`{member}/`")),
            "the crate table lacks {member}/"
        );
    }
}

fn rust_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() && name != "target" && name != ".git" && name != "java" {
            rust_sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn protocol_citations_name_sections_of_docs_protocol_md() {
    let protocol = read("docs/protocol.md");
    let sections: Vec<String> = protocol
        .lines()
        .filter(|l| l.starts_with("## ") || l.starts_with("### "))
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(|n| n.trim_end_matches('.').to_string())
        .collect();
    let mut files = Vec::new();
    rust_sources(&repo(), &mut files);
    let mut cited = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            if !line.contains('§') {
                continue;
            }
            let at = format!("{}:{}", file.display(), n + 1);
            assert!(
                !line.contains("doc §") || line.contains("docs/protocol.md §"),
                "{at} cites a document outside the repository: {line}"
            );
            for part in line.split('§').skip(1) {
                let number: String = part
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '.')
                    .collect();
                let number = number.trim_end_matches('.');
                if number.is_empty() {
                    continue;
                }
                assert!(
                    sections.iter().any(|s| s == number),
                    "{at} cites §{number}, which docs/protocol.md does not have"
                );
                cited += 1;
            }
        }
    }
    assert!(
        cited > 10,
        "the sources cite docs/protocol.md ({cited} citations found)"
    );
}
