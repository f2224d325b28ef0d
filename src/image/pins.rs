//! Pins: an installed app (the owner) keeps the images and templates it needs until it lets them go. A pin names
//! an image by tag (it follows the tag), by digest (`repo@sha256:…`: a pull that moves the tag does not move
//! it), or a template (`lxc:DIST/RELEASE/ARCH/VARIANT`). A pinned target is refused to a delete unless forced
//! (the pins then go, and an event says so), and a prune passes it by. Pins outlive a lost database (records.json).

use super::ImageError;
use crate::reference::Reference;
use crate::store::db::PinRow;
use crate::store::Db;
use std::sync::Arc;

/// The prefix of a template target.
pub const LXC: &str = "lxc:";

pub struct Pins {
    db: Arc<Db>,
}

impl Pins {
    pub fn new(db: Arc<Db>) -> Pins {
        Pins { db }
    }

    /// `owner` as given, when it is a name: 1 to 100 letters, digits, `.`, `_`, `-`.
    pub fn owner(owner: &str) -> Result<&str, ImageError> {
        let ok = !owner.is_empty()
            && owner.len() <= 100
            && owner.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        match ok {
            true => Ok(owner),
            false => Err(ImageError::InvalidParameter(format!(
                "owner {owner:?}: 1 to 100 letters, digits, '.', '_' or '-'"
            ))),
        }
    }

    /// A target as pins keep it: an image reference normalised (`busybox` is `docker.io/library/busybox:latest`),
    /// or `lxc:` and a template's full name.
    pub fn target(t: &str) -> Result<String, ImageError> {
        let t = t.trim();
        if let Some(name) = t.strip_prefix(LXC) {
            let parts: Vec<&str> = name.split('/').collect();
            if parts.len() != 4 || parts.iter().any(|p| p.is_empty() || p.chars().any(char::is_whitespace)) {
                return Err(ImageError::InvalidParameter(format!(
                    "{t:?}: a template is lxc:DIST/RELEASE/ARCH/VARIANT"
                )));
            }
            return Ok(t.to_string());
        }
        Ok(Reference::parse(t)?.with_default_tag().to_string())
    }

    /// Pin `targets` for `owner`; the owner's pins after.
    pub fn add(&self, owner: &str, targets: &[String]) -> Result<Vec<PinRow>, ImageError> {
        let owner = Self::owner(owner)?;
        if targets.is_empty() {
            return Err(ImageError::InvalidParameter("nothing to pin".into()));
        }
        let targets = targets.iter().map(|t| Self::target(t)).collect::<Result<Vec<_>, _>>()?;
        self.db.pins().add(owner, &targets)?;
        Ok(self.db.pins().list(Some(owner))?)
    }

    /// Every pin, or `owner`'s.
    pub fn list(&self, owner: Option<&str>) -> Result<Vec<PinRow>, ImageError> {
        Ok(self.db.pins().list(owner)?)
    }

    /// Release `owner`'s pins on `targets`, or all of them when none is named; how many went.
    pub fn remove(&self, owner: &str, targets: &[String]) -> Result<usize, ImageError> {
        let owner = Self::owner(owner)?;
        let targets = targets.iter().map(|t| Self::target(t)).collect::<Result<Vec<_>, _>>()?;
        let named = (!targets.is_empty()).then_some(targets.as_slice());
        Ok(self.db.pins().remove(owner, named)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_normalised_and_owners_checked() {
        assert_eq!(Pins::target("busybox").unwrap(), "docker.io/library/busybox:latest");
        assert_eq!(
            Pins::target(" 127.0.0.1:5000/app/web:1.2 ").unwrap(),
            "127.0.0.1:5000/app/web:1.2"
        );
        assert_eq!(
            Pins::target("lxc:debian/12/amd64/default").unwrap(),
            "lxc:debian/12/amd64/default"
        );
        assert!(Pins::target("lxc:debian/12").is_err());
        assert!(Pins::target("not a reference").is_err());
        assert!(Pins::owner("home-assistant_2.1").is_ok());
        for bad in ["", "a b", "a/b", &"x".repeat(101)] {
            assert!(Pins::owner(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pins_are_added_listed_and_released_per_owner() {
        let db = Arc::new(Db::open_in_memory().unwrap());
        let pins = Pins::new(db.clone());
        pins.add("app1", &["busybox:1".into(), "lxc:debian/12/amd64/default".into()])
            .unwrap();
        let two = pins.add("app2", &["busybox:1".into()]).unwrap();
        assert_eq!(two.len(), 1);
        assert_eq!(pins.list(None).unwrap().len(), 3);
        let held = db.pins().on(&["lxc:debian/12/amd64/default".into()]).unwrap();
        assert_eq!(held.iter().map(|p| p.owner.as_str()).collect::<Vec<_>>(), ["app1"]);
        let on = db.pins().on(&["docker.io/library/busybox:1".into()]).unwrap();
        assert_eq!(
            on.iter().map(|p| p.owner.as_str()).collect::<Vec<_>>(),
            ["app1", "app2"]
        );
        assert_eq!(pins.remove("app1", &["busybox:1".into()]).unwrap(), 1);
        assert_eq!(pins.remove("app1", &[]).unwrap(), 1);
        assert_eq!(pins.list(Some("app1")).unwrap(), vec![]);
        assert_eq!(db.pins().release(&["docker.io/library/busybox:1".into()]).unwrap(), 1);
        assert!(pins.list(None).unwrap().is_empty());
    }
}
