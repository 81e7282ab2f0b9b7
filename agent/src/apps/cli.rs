//! `ferry apps ...`: deploy, list, status, logs and remove container apps through the running
//! daemon's local API. `deploy` and `remove` wait for the outcome unless `--no-wait`.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

use super::config::read_dot_env;
use super::source::DeployRequest;
use super::views::{AppList, AppState, AppView};
use crate::service::views::ErrorAnswer;

/// How often `deploy` and `remove` ask for progress.
const POLL: Duration = Duration::from_millis(300);

#[derive(Args)]
pub struct AppsArgs {
    /// The local API's address.
    #[arg(
        long,
        env = "FERRY_URL",
        default_value = "http://127.0.0.1:8470",
        global = true
    )]
    url: String,
    /// Bearer token, when the API requires one.
    #[arg(long, env = "FERRY_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// Machine-readable output.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: AppsCommand,
}

#[derive(Subcommand)]
enum AppsCommand {
    /// Deploy or update an app from a compose file and wait until it is healthy or rolled back.
    Deploy {
        name: String,
        file: PathBuf,
        /// A value for ${VAR} in the file, as KEY=VALUE (over a .env file beside it).
        #[arg(long = "env", value_parser = parse_kv)]
        env: Vec<(String, String)>,
        /// Return once the daemon accepted the file.
        #[arg(long)]
        no_wait: bool,
    },
    /// List apps with their state.
    List,
    /// Show an app's state and containers.
    Status { name: String },
    /// Print the output of an app's containers (or one service's).
    Logs {
        name: String,
        service: Option<String>,
        /// Keep printing what they write.
        #[arg(long)]
        follow: bool,
        /// Only the last N lines of each container.
        #[arg(long)]
        tail: Option<u64>,
    },
    /// Stop and remove an app's containers and network (its volumes with --volumes).
    Remove {
        name: String,
        #[arg(long)]
        volumes: bool,
        #[arg(long)]
        no_wait: bool,
    },
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

struct Client {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl Client {
    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let r = self
            .http
            .request(method, format!("{}{path}", self.url.trim_end_matches('/')));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// The answer, or `None` for 404; other failures are the API's error.
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Option<reqwest::Response>> {
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach Ferry's API at {}", self.url))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(Some(resp));
        }
        let not_found = status == StatusCode::NOT_FOUND;
        match resp.json::<ErrorAnswer>().await {
            Ok(a) if not_found && a.error.code == "app_not_found" => Ok(None),
            Ok(a) => bail!(
                "{}: {} (HTTP {})",
                a.error.code,
                a.error.message,
                status.as_u16()
            ),
            Err(_) => bail!("http_error: HTTP {}", status.as_u16()),
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        name: &str,
    ) -> Result<T> {
        let Some(resp) = self.send(req).await? else {
            bail!("app_not_found: no app is called {name:?}");
        };
        resp.json()
            .await
            .context("Ferry's API answered something this CLI cannot read")
    }
}

fn app_path(name: &str) -> String {
    // App names hold only letters, digits, `_`, `.` and `-`: URL-safe.
    format!("/v1/apps/{name}")
}

pub async fn run(args: AppsArgs) -> Result<()> {
    let c = Client {
        http: reqwest::Client::new(),
        url: args.url,
        token: args.token,
    };
    let json = args.json;
    let out = &mut std::io::stdout();
    match args.command {
        AppsCommand::Deploy {
            name,
            file,
            env,
            no_wait,
        } => {
            let request = deploy_request(&file, env)?;
            let path = app_path(&name);
            let v: AppView = c
                .call(c.request(Method::PUT, &path).json(&request), &name)
                .await?;
            if no_wait {
                return print_view(out, &v, json);
            }
            let v = wait_settled(&c, &name, json, out).await?;
            print_view(out, &v, json)?;
            match v.state {
                AppState::Healthy => Ok(()),
                s => bail!("{name}: {}: {}", s.as_str(), v.reason.unwrap_or_default()),
            }
        }
        AppsCommand::List => {
            let v: AppList = c.call(c.request(Method::GET, "/v1/apps"), "").await?;
            if json {
                writeln!(out, "{}", serde_json::to_string(&v)?)?;
                return Ok(());
            }
            writeln!(
                out,
                "{:<24} {:<8} {:<18} {:<18} {:>9}",
                "NAME", "SOURCE", "STATE", "REVISION", "SERVICES"
            )?;
            for a in &v.apps {
                let running = a
                    .services
                    .iter()
                    .filter(|s| s.state == ferry_connectors::docker::RunState::Running)
                    .count();
                writeln!(
                    out,
                    "{:<24} {:<8} {:<18} {:<18} {:>9}",
                    a.name,
                    serde_json::to_value(a.source)?.as_str().unwrap_or(""),
                    a.state.as_str(),
                    a.revision.as_deref().unwrap_or("-"),
                    format!("{running}/{}", a.services.len())
                )?;
            }
            Ok(())
        }
        AppsCommand::Status { name } => {
            let v: AppView = c
                .call(c.request(Method::GET, &app_path(&name)), &name)
                .await?;
            print_view(out, &v, json)
        }
        AppsCommand::Logs {
            name,
            service,
            follow,
            tail,
        } => {
            let mut q = vec![("follow", follow.to_string())];
            if let Some(s) = service {
                q.push(("service", s));
            }
            if let Some(t) = tail {
                q.push(("tail", t.to_string()));
            }
            let path = format!("{}/logs", app_path(&name));
            let Some(resp) = c.send(c.request(Method::GET, &path).query(&q)).await? else {
                bail!("app_not_found: no app (or service) {name:?}");
            };
            let mut body = resp.bytes_stream();
            while let Some(chunk) = body.next().await {
                out.write_all(&chunk?)?;
                out.flush()?;
            }
            Ok(())
        }
        AppsCommand::Remove {
            name,
            volumes,
            no_wait,
        } => {
            let path = format!("{}?volumes={volumes}", app_path(&name));
            let _: AppView = c.call(c.request(Method::DELETE, &path), &name).await?;
            if !no_wait {
                let started = std::time::Instant::now();
                while let Some(resp) = c.send(c.request(Method::GET, &app_path(&name))).await? {
                    let v: AppView = resp.json().await?;
                    if let (AppState::Removing, Some(reason)) = (v.state, &v.reason) {
                        bail!("{name}: removal failed: {reason}");
                    }
                    if started.elapsed() > Duration::from_secs(300) {
                        bail!("{name}: still being removed after 300 s");
                    }
                    tokio::time::sleep(POLL).await;
                }
            }
            if json {
                writeln!(out, "{}", serde_json::json!({ "removed": name }))?;
            } else {
                writeln!(out, "removed app {name}")?;
            }
            Ok(())
        }
    }
}

/// The file's text and directory, and its variables: `.env` beside it, then `--env`.
fn deploy_request(file: &std::path::Path, env: Vec<(String, String)>) -> Result<DeployRequest> {
    let compose =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let abs = std::path::absolute(file)?;
    let dir = abs.parent().map(std::path::Path::to_path_buf);
    let mut variables = match &dir {
        Some(d) => read_dot_env(d).map_err(anyhow::Error::msg)?,
        None => Default::default(),
    };
    variables.extend(env);
    Ok(DeployRequest {
        compose,
        base_dir: dir,
        variables,
    })
}

/// Polls the status, printing each state it passes through, until it settles.
async fn wait_settled(c: &Client, name: &str, json: bool, out: &mut impl Write) -> Result<AppView> {
    let mut last = None;
    loop {
        let v: AppView = c
            .call(c.request(Method::GET, &app_path(name)), name)
            .await?;
        if !json && last != Some(v.state) {
            writeln!(out, "{name}: {}", v.state.as_str())?;
            out.flush()?;
        }
        last = Some(v.state);
        if v.state.settled() {
            return Ok(v);
        }
        tokio::time::sleep(POLL).await;
    }
}

fn print_view(out: &mut impl Write, v: &AppView, json: bool) -> Result<()> {
    if json {
        writeln!(out, "{}", serde_json::to_string(v)?)?;
        return Ok(());
    }
    writeln!(out, "app:       {}", v.name)?;
    writeln!(out, "state:     {}", v.state.as_str())?;
    writeln!(out, "revision:  {}", v.revision.as_deref().unwrap_or("-"))?;
    if let Some(r) = &v.reason {
        writeln!(out, "reason:    {r}")?;
    }
    writeln!(out, "rollbacks: {}", v.rollbacks)?;
    for s in &v.services {
        let health = serde_json::to_value(&s.health)?;
        writeln!(
            out,
            "  {:<16} {:<40} {:<10} {:<10} restarts {}",
            s.service,
            s.container,
            serde_json::to_value(s.state)?.as_str().unwrap_or(""),
            health["status"].as_str().unwrap_or(""),
            s.restart_count
        )?;
    }
    Ok(())
}
