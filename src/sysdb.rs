//! Users and groups read from `/etc/passwd` and `/etc/group` directly: a static binary must not go through
//! glibc's NSS, which on a NAS joined to a domain would load the NAS's own `libnss_*.so`.

use std::path::Path;

/// The gid of `name` in a group file.
pub fn group_id_in(file: &Path, name: &str) -> Option<u32> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        f.next()?;
        f.next()?.parse().ok()
    })
}

pub fn group_id(name: &str) -> Option<u32> {
    group_id_in(Path::new("/etc/group"), name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_group_file() {
        let d = crate::testutil::tempdir();
        let f = d.join("group");
        std::fs::write(&f, "root:x:0:\n# comment\nadministrators:x:100:admin\nbroken\n").unwrap();
        assert_eq!(group_id_in(&f, "administrators"), Some(100));
        assert_eq!(group_id_in(&f, "root"), Some(0));
        assert_eq!(group_id_in(&f, "broken"), None);
        assert_eq!(group_id_in(&f, "nobody"), None);
    }
}
