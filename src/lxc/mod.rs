//! LXC templates: sources (image servers in the `lxc-download` and simplestreams formats, the vendor catalog),
//! templates kept as blobs of the content store, the safe unpacker, and Docker image → LXC template.

mod blob;
pub mod codec;
pub mod convert;
mod error;
pub mod index;
pub mod meta;
pub mod service;
pub mod sources;
pub mod unpack;

pub use error::LxcError;
pub use index::{Offer, TemplateName};
pub use service::{LxcJob, LxcOptions, LxcService};
pub use sources::{SourceConfig, SourceKind};
