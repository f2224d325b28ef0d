//! depot: the image service of a NAS. docs/architecture.md is the map: requests flow
//! `api → lxc → image → jobs → transfer → registry → store`, each layer knowing only those below it.

pub mod api;
pub mod auth;
pub mod board;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod digest;
pub mod engine_client;
pub mod error;
pub mod events;
pub mod fsck;
pub mod fsutil;
pub mod http;
pub mod image;
pub mod jobs;
pub mod logger;
pub mod lxc;
pub mod net;
pub mod oci;
pub mod platform;
pub mod policy;
pub mod pool;
pub mod progress;
pub mod reference;
pub mod registry;
pub mod store;
pub mod sync;
pub mod sysdb;
pub mod transfer;
pub mod web;

#[cfg(test)]
pub mod testutil;
