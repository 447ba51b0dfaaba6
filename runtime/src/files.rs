//! The manifest walk: every YAML or JSON file below a folder, in a stable order, skipping
//! hidden entries (editors' swap files, `.git`). `render` and the gateway's local mode read
//! the same files from the same folder.

use std::path::{Path, PathBuf};

/// A path that could not be read, and why.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct Unreadable {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// `path` itself when it is a file, else the manifest files below it, sorted by path.
pub fn manifests(path: &Path) -> Result<Vec<PathBuf>, Unreadable> {
    let fail = |source| Unreadable { path: path.to_path_buf(), source };
    if !std::fs::metadata(path).map_err(fail)?.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    walk(path, &mut files)?;
    files.sort();
    Ok(files)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), Unreadable> {
    let fail = |source| Unreadable { path: dir.to_path_buf(), source };
    for entry in std::fs::read_dir(dir).map_err(fail)? {
        let path = entry.map_err(fail)?.path();
        if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
            continue;
        }
        if path.is_dir() {
            walk(&path, files)?;
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml" || e == "json") {
            files.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_are_found_below_a_folder_in_order_without_hidden_ones() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for file in ["b.yaml", "a/z.json", "a/y.yml", "notes.txt", ".hidden.yaml", ".git/config.yaml"] {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "{}").unwrap();
        }
        let found: Vec<_> = manifests(root).unwrap().iter().map(|p| p.strip_prefix(root).unwrap().to_owned()).collect();
        assert_eq!(found, [PathBuf::from("a/y.yml"), PathBuf::from("a/z.json"), PathBuf::from("b.yaml")]);
        assert_eq!(manifests(&root.join("notes.txt")).unwrap(), [root.join("notes.txt")], "a file is itself");
        let missing = manifests(&root.join("nowhere")).unwrap_err();
        assert_eq!(missing.path, root.join("nowhere"));
    }
}
