//! Listing tasks, page by page, for every client: the CLI's `ListTasks`
//! (`api.rs`) and the JSON API behind the web UI (`http/api.rs`) both call
//! [`list_tasks`], so `wasmesos tasks` and the UI show the same tasks.
//!
//! Tasks are read from the store in key order (tenant, framework, task id),
//! not from the core: the core holds only active tasks, and reading here
//! never holds up allocation. A filter that matches rarely would otherwise
//! read the whole history for one page, so a call reads at most
//! [`MAX_SCAN`] records and then answers what it found with a page token
//! that resumes the scan (a short or even empty page with a token: keep
//! paging).

use tonic::Status;
use wasmesos_api::Principal;
use wasmesos_api::proto::{self, JobState};

use crate::commit::Committer;
use crate::keys;

/// Tasks returned per page unless the client asks for fewer.
pub const DEFAULT_PAGE: usize = 500;
/// Most tasks in one page (larger requests are clamped).
pub const MAX_PAGE: usize = 5000;
/// Most task records one call reads before answering.
pub const MAX_SCAN: usize = 50_000;

fn store_error(e: impl std::fmt::Display) -> Status {
    Status::unavailable(format!("store: {e}"))
}

/// What to list beyond [`proto::ListTasksRequest`].
#[derive(Clone, Debug, Default)]
pub struct Extra {
    /// Keep tasks whose id or name contains this (case-insensitive).
    pub name_contains: String,
    /// Most tasks in the page, under [`MAX_PAGE`] (0: the request's limit).
    pub max_page: usize,
}

/// One page of the caller's tasks, filtered, in key order; plus queued jobs
/// on the first page when asked.
pub async fn list_tasks(
    committer: &Committer,
    who: &Principal,
    req: proto::ListTasksRequest,
    extra: &Extra,
) -> Result<proto::ListTasksResponse, Status> {
    let prefix = if who.is_operator() {
        keys::TASKS.to_string()
    } else {
        keys::tasks_of(&who.tenant)
    };
    if !req.page_token.is_empty() && !req.page_token.starts_with(&prefix) {
        return Err(Status::invalid_argument("page token from another listing"));
    }
    let max = if extra.max_page == 0 {
        MAX_PAGE
    } else {
        extra.max_page.min(MAX_PAGE)
    };
    let limit = match req.limit as usize {
        0 => DEFAULT_PAGE.min(max),
        n => n.min(max),
    };
    let state = req.state();
    let needle = extra.name_contains.to_lowercase();
    let mut tasks = Vec::new();
    let mut after = (!req.page_token.is_empty()).then(|| req.page_token.clone());
    let mut next_page_token = String::new();
    let mut scanned = 0;
    'pages: loop {
        let page = committer
            .store()
            .range(&prefix, after.as_deref(), limit.max(100))
            .await
            .map_err(store_error)?;
        for kv in &page.kvs {
            scanned += 1;
            let task: proto::Task =
                crate::commit::decode(&kv.key, &kv.value).map_err(store_error)?;
            let keep = (state == proto::TaskState::Unspecified || task.state() == state)
                && (req.framework.is_empty()
                    || task.framework_name == req.framework
                    || task.framework_id == req.framework)
                && (req.agent_id.is_empty() || task.agent_id == req.agent_id)
                && (needle.is_empty()
                    || task.task_id.to_lowercase().contains(&needle)
                    || task.name.to_lowercase().contains(&needle));
            if keep {
                tasks.push(task);
            }
            let last_of_all = !page.more && kv.key == page.kvs.last().map_or("", |l| &l.key);
            if (tasks.len() == limit || scanned >= MAX_SCAN) && !last_of_all {
                next_page_token = kv.key.clone();
                break 'pages;
            }
        }
        if !page.more {
            break;
        }
        after = page.kvs.last().map(|kv| kv.key.clone());
    }
    let mut queued = Vec::new();
    if req.include_queued && req.page_token.is_empty() {
        let prefix = if who.is_operator() {
            keys::JOBS.to_string()
        } else {
            keys::jobs_of(&who.tenant)
        };
        for job in committer
            .list::<proto::Job>(&prefix)
            .await
            .map_err(store_error)?
        {
            let matches = req.framework.is_empty()
                || job.framework_name == req.framework
                || job.framework_id == req.framework;
            if job.state() == JobState::Queued && matches {
                queued.push(job);
            }
        }
    }
    Ok(proto::ListTasksResponse {
        tasks,
        queued,
        next_page_token,
    })
}
