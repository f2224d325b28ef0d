//! Background tasks of the 2021 API (spec §1.4): `POST /background/{category}` for `image_download`,
//! `image_remove`, `image_push` and `image_export`, the task list and each task's state and progress — what
//! scripts written for Container Station poll ("how can I tell the progress of an image download?").
//!
//! A download task is a persistent download of the image service (it survives restarts as a download; its
//! task record is this daemon's); the others run on a thread of their own. The list keeps the newest
//! [`KEEP`] tasks.

use super::{blocking, ok, require_admin, Answer, Caller, Station, StationError};
use crate::http::{json, read_body, Req, MAX_SMALL_BODY};
use crate::reference::Reference;
use crate::store::DownloadState;
use crate::sync::Locked;
use hyper::StatusCode;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

const KEEP: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Running,
    Completed,
    Failed,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Waiting => "waiting",
            State::Running => "running",
            State::Completed => "completed",
            State::Failed => "failed",
        }
    }

    fn ended(self) -> bool {
        matches!(self, State::Completed | State::Failed)
    }
}

#[derive(Debug, Clone)]
struct Task {
    id: u64,
    category: &'static str,
    name: String,
    params: Value,
    user: String,
    init: i64,
    start: Option<i64>,
    end: Option<i64>,
    state: State,
    /// -1 while unknown, else 0–100.
    progress: i64,
    message: Option<String>,
    /// A download task follows this download.
    download: Option<i64>,
}

/// The tasks of this daemon.
#[derive(Default)]
pub struct Tasks {
    list: Mutex<VecDeque<Task>>,
    next: Mutex<u64>,
}

fn now() -> i64 {
    crate::store::db::now()
}

impl Tasks {
    fn add(&self, mut t: Task) -> u64 {
        let id = {
            let mut n = self.next.locked();
            *n += 1;
            *n
        };
        t.id = id;
        let mut l = self.list.locked();
        l.push_back(t);
        // forget the oldest ended tasks first
        while l.len() > KEEP {
            match l.iter().position(|t| t.state.ended()) {
                Some(i) => {
                    l.remove(i);
                }
                None => {
                    l.pop_front();
                }
            }
        }
        id
    }

    fn update(&self, id: u64, f: impl FnOnce(&mut Task)) {
        let mut l = self.list.locked();
        if let Some(t) = l.iter_mut().find(|t| t.id == id) {
            f(t);
        }
    }

    fn snapshot(&self) -> Vec<Task> {
        self.list.locked().iter().cloned().collect()
    }
}

fn task_json(t: &Task) -> super::dto::Task {
    super::dto::Task {
        category: t.category,
        deletable: t.state.ended() || t.download.is_some(),
        detail_state: t.message.clone().unwrap_or_else(|| t.state.as_str().to_string()),
        end: t.end,
        id: t.id,
        init: t.init,
        message: t.message.clone(),
        name: t.name.clone(),
        params: t.params.clone(),
        progress: t.progress,
        result: match t.state {
            State::Completed => 0,
            State::Failed => 1,
            _ => -1,
        },
        start: t.start,
        state: t.state.as_str(),
        user: t.user.clone(),
    }
}

/// A download task reads its state from its download.
fn refresh(downloads: &crate::jobs::Downloads, tasks: &mut [Task]) -> Result<(), StationError> {
    if !tasks.iter().any(|t| t.download.is_some() && !t.state.ended()) {
        return Ok(());
    }
    let downloads = downloads.status(500)?;
    for t in tasks.iter_mut() {
        let Some(d) = t.download.and_then(|id| downloads.iter().find(|d| d.row.id == id)) else {
            continue;
        };
        t.progress = match (d.row.state, d.total) {
            (DownloadState::Committed, _) => 100,
            (_, Some(total)) if total > 0 => (d.done * 100 / total) as i64,
            _ => -1,
        };
        t.state = match (d.row.state, d.row.paused) {
            (DownloadState::Committed, _) => State::Completed,
            (DownloadState::Failed, _) => State::Failed,
            (_, true) => State::Waiting,
            (DownloadState::Queued, _) => State::Waiting,
            _ => State::Running,
        };
        t.message = match t.state {
            State::Failed => d.row.error.clone(),
            State::Waiting if d.row.paused => Some("paused".into()),
            _ => None,
        };
        if t.state.ended() && t.end.is_none() {
            t.end = Some(d.row.updated_at);
        }
    }
    Ok(())
}

pub async fn list(st: &Station) -> Answer {
    let (downloads, tasks) = (st.downloads.clone(), st.tasks.clone());
    let all = blocking(move || -> Result<Vec<Task>, StationError> {
        let mut all = tasks.snapshot();
        refresh(&downloads, &mut all)?;
        for t in &all {
            let t2 = t.clone();
            tasks.update(t.id, |x| *x = t2);
        }
        Ok(all)
    })
    .await?;
    ok(&all.iter().rev().map(task_json).collect::<Vec<_>>())
}

fn find(all: Vec<Task>, id: &str) -> Result<Task, StationError> {
    let n: u64 = id
        .parse()
        .map_err(|_| StationError::bad_request(format!("task id {id:?} is not a number")))?;
    all.into_iter()
        .find(|t| t.id == n)
        .ok_or_else(|| StationError::new(StatusCode::NOT_FOUND, format!("no task {n}")))
}

pub async fn get(st: &Station, id: &str) -> Answer {
    let (downloads, tasks) = (st.downloads.clone(), st.tasks.clone());
    let mut t = find(tasks.snapshot(), id)?;
    let t = blocking(move || -> Result<Task, StationError> {
        refresh(&downloads, std::slice::from_mut(&mut t))?;
        let t2 = t.clone();
        tasks.update(t.id, |x| *x = t2);
        Ok(t)
    })
    .await?;
    ok(&task_json(&t))
}

/// Forget an ended task; a running download task is cancelled (its download ends as failed).
pub async fn delete(st: &Station, caller: &Caller, id: &str) -> Answer {
    require_admin(caller)?;
    let t = find(st.tasks.snapshot(), id)?;
    if !t.state.ended() {
        let Some(d) = t.download else {
            return Err(StationError::new(
                StatusCode::CONFLICT,
                format!("task {} is running", t.id),
            ));
        };
        let downloads = st.downloads.clone();
        // ended already, or not: either way the task goes
        let _ = blocking(move || downloads.cancel(d)).await;
    }
    st.tasks.list.locked().retain(|x| x.id != t.id);
    ok(&super::dto::Done {})
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(rename = "type")]
    image_type: Option<String>,
    repository: Option<String>,
    image: String,
    tag: Option<String>,
    registry_name: Option<String>,
    /// image_export: where the archive goes.
    path: Option<String>,
}

fn image_ref(image: &str, tag: Option<&str>) -> Result<Reference, StationError> {
    let text = match tag {
        Some(t) if !t.is_empty() => format!("{image}:{t}"),
        _ => image.to_string(),
    };
    Reference::parse(&text).map_err(|e| StationError::bad_request(e.to_string()))
}

/// The categories of `POST /background/{category}` depot runs (as their wire names).
fn category_of(category: &str) -> Result<&'static str, StationError> {
    match category {
        "image_download" => Ok("image_download"),
        "image_remove" => Ok("image_remove"),
        "image_push" => Ok("image_push"),
        "image_export" => Ok("image_export"),
        "create" | "application" | "application_upgrade" | "container_import" | "container_export" => {
            Err(StationError::new(
                StatusCode::NOT_IMPLEMENTED,
                format!("background {category}: depot keeps images; it runs no containers or applications"),
            ))
        }
        other => Err(StationError::bad_request(format!("no background category {other:?}"))),
    }
}

pub async fn create(st: &Station, req: Req, caller: &Caller, category: &str) -> Answer {
    let category = category_of(category)?;
    let body = read_body(req.into_body(), MAX_SMALL_BODY).await?;
    let raw: Value =
        serde_json::from_slice(&body).map_err(|e| StationError::bad_request(format!("malformed task: {e}")))?;
    let p: Params =
        serde_json::from_value(raw.clone()).map_err(|e| StationError::bad_request(format!("malformed task: {e}")))?;
    if p.image_type.as_deref().is_some_and(|t| t != "docker") {
        return Err(StationError::new(
            StatusCode::NOT_FOUND,
            "only docker images are kept by this depot yet",
        ));
    }
    let mut task = Task {
        id: 0,
        category,
        name: String::new(),
        params: raw,
        user: caller.user().to_string(),
        init: now(),
        start: None,
        end: None,
        state: State::Waiting,
        progress: -1,
        message: None,
        download: None,
    };
    match category {
        "image_download" => download(st, &p, &mut task).await?,
        "image_remove" => remove(st, &p, &mut task)?,
        "image_push" => push(st, &p, &mut task)?,
        _ => export(st, &p, &mut task)?,
    }
    let id = match task.id {
        0 => st.tasks.add(task),
        id => id,
    };
    let t = find(st.tasks.snapshot(), &id.to_string())?;
    Ok(json(StatusCode::CREATED, &task_json(&t)))
}

/// `image_download`: a download the task follows, from Docker Hub or a stored private registry.
async fn download(st: &Station, p: &Params, task: &mut Task) -> Result<(), StationError> {
    let name = match (p.repository.as_deref().unwrap_or("dockerhub"), &p.registry_name) {
        ("private", Some(reg)) => format!("{}/{}", st.registry_host(reg.clone()).await?, p.image),
        ("private", None) => return Err(StationError::bad_request("repository private needs a registry_name")),
        ("dockerhub", _) => p.image.clone(),
        (other, _) => {
            return Err(StationError::bad_request(format!(
                "repository {other:?}: dockerhub or private"
            )))
        }
    };
    let r = image_ref(&name, Some(p.tag.as_deref().unwrap_or("latest")))?;
    task.name = r.familiar();
    let job = st.start_download(r).await?;
    task.download = Some(job.download);
    task.start = Some(now());
    task.state = State::Running;
    Ok(())
}

/// `image_remove`: one tag, or every tag of the repository.
fn remove(st: &Station, p: &Params, task: &mut Task) -> Result<(), StationError> {
    let r = image_ref(&p.image, p.tag.as_deref())?;
    task.name = r.familiar();
    let images = st.images.clone();
    spawn(st.tasks.clone(), task, move |_| {
        let names: Vec<String> = match r.tag() {
            Some(_) => vec![r.to_string()],
            None => images
                .list()?
                .into_iter()
                .flat_map(|i| i.tags)
                .filter(|t| Reference::parse(t).is_ok_and(|x| x.name() == r.name()))
                .collect(),
        };
        if names.is_empty() {
            return Err(crate::image::ImageError::NotFound {
                reference: r.familiar(),
            });
        }
        for n in names {
            images.delete(&n, false)?;
        }
        Ok(())
    });
    Ok(())
}

/// `image_push`: to its registry with the stored credentials; progress over all its layers.
fn push(st: &Station, p: &Params, task: &mut Task) -> Result<(), StationError> {
    let r = image_ref(&p.image, Some(p.tag.as_deref().unwrap_or("latest")))?;
    task.name = r.familiar();
    let images = st.images.clone();
    spawn(st.tasks.clone(), task, move |progress| {
        let targets = images.push_targets(&r)?;
        let creds = images.registries.stored_creds(r.domain());
        let mut layers: std::collections::HashMap<String, (u64, u64)> = Default::default();
        images.push(&targets, creds, &mut |e| {
            if let crate::image::push::PushEvent::Progress { id, current, total } = e {
                layers.insert(id, (current, total));
                let (d, t) = layers.values().fold((0, 0), |a, x| (a.0 + x.0, a.1 + x.1));
                if let Some(pct) = (d * 99).checked_div(t) {
                    progress(pct as i64);
                }
            }
        })
    });
    Ok(())
}

/// `image_export`: an archive written into one of the export directories.
fn export(st: &Station, p: &Params, task: &mut Task) -> Result<(), StationError> {
    let r = image_ref(&p.image, Some(p.tag.as_deref().unwrap_or("latest")))?;
    let path = export_path(st, p.path.as_deref())?;
    task.name = r.familiar();
    let images = st.images.clone();
    spawn(st.tasks.clone(), task, move |progress| {
        images.export_to(&[r.to_string()], &path.path(), &mut |done, total| {
            if let Some(pct) = (done * 99).checked_div(total) {
                progress(pct as i64)
            }
        })
    });
    Ok(())
}

/// The file an export writes: an absolute `.tar` path whose directory is one of the export directories or
/// beneath one with no symlink on the way, held open from this check on, so that a swap of a directory for a
/// symlink while the export runs cannot lead the write out (see [`crate::fsutil::beneath`]).
fn export_path(st: &Station, path: Option<&str>) -> Result<crate::fsutil::beneath::Anchored, StationError> {
    let path = path.ok_or_else(|| StationError::bad_request("image_export needs a path"))?;
    let p = std::path::Path::new(path);
    let refuse = || {
        StationError::new(
            StatusCode::FORBIDDEN,
            format!(
                "path {path:?}: exports go inside {} (export_dirs)",
                st.export_dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    };
    let held = match crate::fsutil::beneath::hold(p, &st.export_dirs) {
        Ok(Some(a)) => a,
        Ok(None) => return Err(refuse()),
        // a missing directory on the way; else a symlink or not a directory
        Err(e) if e.raw_os_error() == Some(nix::libc::ENOENT) => {
            return Err(StationError::bad_request(format!(
                "path {path:?}: a .tar file in an existing directory"
            )))
        }
        Err(_) => return Err(refuse()),
    };
    if p.extension().is_none_or(|e| e != "tar") {
        return Err(StationError::bad_request(format!(
            "path {path:?}: a .tar file in an existing directory"
        )));
    }
    Ok(held)
}

/// Run `work` on a thread of its own as task `task` (registered here), recording its progress and end.
fn spawn(
    tasks: Arc<Tasks>,
    task: &mut Task,
    work: impl FnOnce(&mut dyn FnMut(i64)) -> Result<(), crate::image::ImageError> + Send + 'static,
) {
    task.state = State::Running;
    task.start = Some(now());
    let id = tasks.add(task.clone());
    task.id = id;
    let spawned = std::thread::Builder::new().name(format!("task-{id}")).spawn(move || {
        let r = work(&mut |p| tasks.update(id, |t| t.progress = p.clamp(0, 99)));
        tasks.update(id, |t| {
            t.end = Some(now());
            match r {
                Ok(()) => {
                    t.state = State::Completed;
                    t.progress = 100;
                }
                Err(e) => {
                    log::warn!("task {id} ({} {}): {e}", t.category, t.name);
                    t.state = State::Failed;
                    t.message = Some(e.to_string());
                }
            }
        });
    });
    if let Err(e) = spawned {
        log::error!("cannot start a task thread: {e}");
    }
}
