//! `depot pin`: what installed apps keep, over the station API's `/pins`.

use super::{print_table, CliError, Client};
use crate::engine_client::enc;
use hyper::Method;

const API: &str = "/api/v1/pins";

fn table(v: &serde_json::Value) {
    let mut rows = vec![["OWNER".to_string(), "TARGET".into()]];
    for p in v.as_array().into_iter().flatten() {
        let s = |k: &str| p[k].as_str().unwrap_or_default().to_string();
        rows.push([s("owner"), s("target")]);
    }
    print_table(&rows);
}

/// Pin `targets` for `owner`, then list the owner's pins.
pub async fn add(c: &Client, owner: &str, targets: &[String]) -> Result<(), CliError> {
    let body = serde_json::json!({"owner": owner, "targets": targets});
    table(&c.call_json(Method::POST, API, Some(body)).await?);
    Ok(())
}

pub async fn ls(c: &Client, owner: Option<&str>) -> Result<(), CliError> {
    let path = match owner {
        Some(o) => format!("{API}?owner={}", enc(o)),
        None => API.to_string(),
    };
    table(&c.call(Method::GET, &path).await?);
    Ok(())
}

/// Release `owner`'s pins on `targets`, or all of them.
pub async fn rm(c: &Client, owner: &str, targets: &[String]) -> Result<(), CliError> {
    let query: Vec<String> = targets.iter().map(|t| format!("target={}", enc(t))).collect();
    let path = format!("{API}/{}?{}", enc(owner), query.join("&"));
    let v = c.call(Method::DELETE, &path).await?;
    println!("{} pins released", v["removed"].as_u64().unwrap_or(0));
    Ok(())
}
