//! The documentation holds together: the README fits on a page, and every
//! link in it, in `docs/` and in the Python package's page resolves to a
//! file of the repository and, where it names one, to a heading of that
//! file. (Links to the web are not followed: CI has no network.)

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The repository root (this crate is `tests/`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Every markdown page a reader is sent to: the README, `docs/`, and the
/// Python package's page (shown by pip).
fn pages() -> Vec<PathBuf> {
    let root = root();
    let mut pages = vec![root.join("README.md"), root.join("lrp-py/README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// The lines of a page outside fenced code blocks, with inline code spans
/// blanked out (a link inside backticks is text, not a link).
fn prose_lines(text: &str) -> Vec<String> {
    let mut fenced = false;
    let mut lines = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut prose = String::new();
        let mut in_code = false;
        for c in line.chars() {
            if c == '`' {
                in_code = !in_code;
                prose.push(' ');
            } else {
                prose.push(if in_code { ' ' } else { c });
            }
        }
        lines.push(prose);
    }
    lines
}

/// The anchor GitHub gives a heading: lowercased, everything but letters,
/// digits, spaces, `-` and `_` dropped, spaces made `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a page's headings; a repeated heading gets `-1`, `-2`.
fn anchors(text: &str) -> HashSet<String> {
    let mut seen = HashSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced || !line.starts_with('#') {
            continue;
        }
        let heading = line.trim_start_matches('#');
        if !heading.starts_with(' ') {
            continue;
        }
        let base = slug(&heading.replace('`', ""));
        let mut anchor = base.clone();
        let mut k = 1;
        while seen.contains(&anchor) {
            anchor = format!("{base}-{k}");
            k += 1;
        }
        seen.insert(anchor);
    }
    seen
}

/// The targets of the inline links `[text](target)` of a page's prose.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    for line in prose_lines(text) {
        let mut rest = line.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            match after.find(')') {
                Some(end) => {
                    targets.push(after[..end].trim().to_string());
                    rest = &after[end..];
                }
                None => break,
            }
        }
    }
    targets
}

/// The links of `page` that do not resolve, each as `target: why`.
fn broken_links(page: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(page).unwrap();
    let mut broken = Vec::new();
    for target in link_targets(&text) {
        if target.starts_with("http://") || target.starts_with("https://") || target.starts_with("mailto:") {
            continue;
        }
        let (path, fragment) = match target.split_once('#') {
            Some((path, fragment)) => (path, Some(fragment)),
            None => (target.as_str(), None),
        };
        let file = if path.is_empty() {
            page.to_path_buf()
        } else {
            page.parent().unwrap().join(path)
        };
        if !file.exists() {
            broken.push(format!("{target}: no such file"));
            continue;
        }
        if let Some(fragment) = fragment {
            let is_markdown = file.extension().is_some_and(|e| e == "md");
            let known = is_markdown && anchors(&std::fs::read_to_string(&file).unwrap()).contains(fragment);
            if !known {
                broken.push(format!("{target}: no heading with that anchor"));
            }
        }
    }
    broken
}

#[test]
fn every_link_in_the_readme_and_docs_resolves() {
    let mut broken = Vec::new();
    let mut links = 0;
    for page in pages() {
        links += link_targets(&std::fs::read_to_string(&page).unwrap()).len();
        for why in broken_links(&page) {
            broken.push(format!("{}: {why}", page.strip_prefix(root()).unwrap().display()));
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    // The pages link to each other richly; a parser that found none would pass vacuously.
    assert!(links > 50, "only {links} links found");
}

#[test]
fn the_readme_fits_on_a_page() {
    let size = std::fs::metadata(root().join("README.md")).unwrap().len();
    assert!(size <= 12_000, "README.md is {size} bytes; move detail into docs/");
}

#[test]
fn the_docs_index_names_every_page() {
    let index = std::fs::read_to_string(root().join("docs/README.md")).unwrap();
    let linked: HashSet<String> = link_targets(&index).into_iter().collect();
    for page in pages() {
        let name = page.file_name().unwrap().to_str().unwrap();
        if page.parent() == Some(&root().join("docs")) && name != "README.md" {
            assert!(linked.contains(name), "docs/README.md does not link {name}");
        }
    }
}

#[test]
fn the_link_checker_finds_a_broken_link_and_a_missing_anchor() {
    let dir = std::env::temp_dir().join(format!("lrp-docs-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("page.md");
    std::fs::write(
        &page,
        "# A page\n\n## Encoder–decoder alignment\n\n[ok](#encoderdecoder-alignment) [self](page.md#a-page)\n\
         [gone](missing.md) [bad anchor](#no-such-heading) `[code](not-a-link.md)`\n\
         ```text\n[fenced](also-not-a-link.md)\n```\n",
    )
    .unwrap();
    let broken = broken_links(&page);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        broken,
        vec![
            "missing.md: no such file".to_string(),
            "#no-such-heading: no heading with that anchor".to_string()
        ]
    );
}
