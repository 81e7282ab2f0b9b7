//! Container apps: compose files deployed through the Docker engine, the way the Greengrass
//! Docker application deployment connector does, without docker-compose on the gateway.
//!
//! - [`compose`]: the compose subset, parsed into typed values (pure).
pub mod compose;
