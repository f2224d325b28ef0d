//! The event bus of images and templates: every operation that changes or moves an image (pull, push, tag, untag,
//! delete, load, save, import, prune) or a template says so here, once; the Engine API's `/events` and the station's event log read it.
//!
//! Memory is bounded: the last [`KEEP`] events are kept for replay (`since`), as dockerd keeps 256; a follower
//! that falls further behind misses the oldest, it never holds the bus up.

use crate::sync::Locked;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

/// Events kept for replay.
pub const KEEP: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pull,
    Push,
    Tag,
    Untag,
    Delete,
    Load,
    Save,
    Import,
    Prune,
    /// Pins released by a forced delete (depot's own): `owners` names who held them.
    Unpin,
    /// A pull that ended without an image (depot's own: dockerd reports none, so `/events` leaves it out).
    PullFailed,
    /// An LXC template kept, failed to download, deleted, unpacked into a container directory, or made from an
    /// image: depot's own too (dockerd has no templates). The actor is the template's full name.
    TemplatePull,
    TemplatePullFailed,
    TemplateDelete,
    TemplateUnpack,
    TemplateConvert,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Tag => "tag",
            Action::Untag => "untag",
            Action::Delete => "delete",
            Action::Load => "load",
            Action::Save => "save",
            Action::Import => "import",
            Action::Prune => "prune",
            Action::Unpin => "unpin",
            Action::PullFailed => "pull_failed",
            Action::TemplatePull => "template_pull",
            Action::TemplatePullFailed => "template_pull_failed",
            Action::TemplateDelete => "template_delete",
            Action::TemplateUnpack => "template_unpack",
            Action::TemplateConvert => "template_convert",
        }
    }

    /// Whether dockerd has this event (what the Engine API's `/events` shows).
    pub fn in_docker(self) -> bool {
        !matches!(
            self,
            Action::PullFailed
                | Action::Unpin
                | Action::TemplatePull
                | Action::TemplatePullFailed
                | Action::TemplateDelete
                | Action::TemplateUnpack
                | Action::TemplateConvert
        )
    }
}

/// One image event. `actor` is what the action was about (a familiar ref for pull and push, an image id for the
/// others, empty for prune); `attributes` carry `name` (and the image's labels) or, for prune, `reclaimed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub action: Action,
    pub actor: String,
    pub attributes: BTreeMap<String, String>,
    /// Unix time in nanoseconds.
    pub time_nano: i64,
    /// The reference an untag removed (dockerd's event names only the image id; the station's log names the
    /// tag).
    pub reference: Option<String>,
}

#[derive(Default)]
struct Ring {
    events: VecDeque<(u64, Event)>,
    next: u64,
}

#[derive(Default)]
pub struct EventBus {
    ring: Mutex<Ring>,
    changed: event_listener::Event,
}

pub fn now_nano() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

impl EventBus {
    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring.locked()
    }

    pub fn emit(&self, action: Action, actor: impl Into<String>, attributes: BTreeMap<String, String>) {
        self.emit_about(action, actor, attributes, None)
    }

    /// [`EventBus::emit`], naming the reference the event is about.
    pub fn emit_about(
        &self,
        action: Action,
        actor: impl Into<String>,
        attributes: BTreeMap<String, String>,
        reference: Option<String>,
    ) {
        let e = Event {
            action,
            actor: actor.into(),
            attributes,
            time_nano: now_nano(),
            reference,
        };
        {
            let mut r = self.ring();
            let seq = r.next;
            r.next += 1;
            r.events.push_back((seq, e));
            while r.events.len() > KEEP {
                r.events.pop_front();
            }
        }
        self.changed.notify(usize::MAX);
    }

    /// A cursor for a new follower: past everything now kept (only new events), or, with `since` (unix
    /// nanoseconds), at the first kept event at or after it.
    pub fn cursor(&self, since: Option<i64>) -> u64 {
        let r = self.ring();
        match since {
            None => r.next,
            Some(t) => r
                .events
                .iter()
                .find(|(_, e)| e.time_nano >= t)
                .map(|(s, _)| *s)
                .unwrap_or(r.next),
        }
    }

    /// The kept events numbered `from` and up, with their numbers, and the number the next event will get;
    /// does not wait.
    pub fn since(&self, from: u64) -> (Vec<(u64, Event)>, u64) {
        let r = self.ring();
        let out = r.events.iter().filter(|(s, _)| *s >= from).cloned().collect();
        (out, r.next)
    }

    /// Events at or after `cursor` (advanced past them); waits until there is one.
    pub async fn next(&self, cursor: &mut u64) -> Vec<Event> {
        loop {
            let listener = self.changed.listen();
            {
                let r = self.ring();
                let out: Vec<Event> = r
                    .events
                    .iter()
                    .filter(|(s, _)| *s >= *cursor)
                    .map(|(_, e)| e.clone())
                    .collect();
                if !out.is_empty() {
                    *cursor = r.next;
                    return out;
                }
            }
            listener.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_follow_and_bounded() {
        let bus = EventBus::default();
        let name = |n: &str| BTreeMap::from([("name".to_string(), n.to_string())]);
        bus.emit(Action::Pull, "busybox:latest", name("busybox"));
        let mid = now_nano();
        std::thread::sleep(std::time::Duration::from_millis(2));
        bus.emit(Action::Tag, "sha256:1", name("foo:bar"));
        let mut live = bus.cursor(None);
        let mut from_mid = bus.cursor(Some(mid));
        let mut all = bus.cursor(Some(0));
        smol::block_on(async {
            assert_eq!(bus.next(&mut all).await.len(), 2);
            let got = bus.next(&mut from_mid).await;
            assert_eq!((got.len(), got[0].action), (1, Action::Tag));
            bus.emit(Action::Untag, "sha256:1", name("sha256:1"));
            let got = bus.next(&mut live).await;
            assert_eq!((got.len(), got[0].action), (1, Action::Untag), "only new events");
        });
        for i in 0..(KEEP + 10) {
            bus.emit(Action::Delete, format!("sha256:{i}"), BTreeMap::new());
        }
        let mut c = bus.cursor(Some(0));
        let got = smol::block_on(bus.next(&mut c));
        assert_eq!(got.len(), KEEP, "bounded");
        assert_eq!(got.last().unwrap().actor, format!("sha256:{}", KEEP + 9));
    }
}
