//! Container apps: compose files deployed through the Docker engine, the way the Greengrass
//! Docker application deployment connector does, without docker-compose on the gateway.
//!
//! - [`compose`]: the compose subset, parsed into typed values (pure).
//! - [`spec`]: an app's desired state ([`DesiredApp`]): engine names, labels, spec hashes.
//! - [`observed`]: the engine's actual state, read back by Ferry's labels.
//! - [`plan`]: desired against actual: steady (adopted as it runs), update, removal (pure).
//! - [`rollout`]: one app's update with health gating and rollback, a pure state machine.
//! - [`engine`]: the [`Engine`] trait the deployer applies actions through, and
//!   [`DockerEngine`], its bollard implementation ([`convert`]: specs as engine requests).
//! - [`deployer`]: the I/O loop around the planner and the rollout machine.
pub mod compose;
pub mod convert;
pub mod deployer;
pub mod engine;
pub mod observed;
pub mod plan;
pub mod rollout;
pub mod spec;

#[cfg(test)]
mod fake;

pub use deployer::{converge, remove};
pub use engine::{DockerEngine, Engine, EngineError, LogChunk};
pub use observed::{Health, Observed, ObservedContainer, ObservedObject, RunState};
pub use plan::{plan_app, plan_removal, Action, AppPlan};
pub use rollout::{Next, Outcome, Rollout, RolloutSettings, Stage};
pub use spec::DesiredApp;
