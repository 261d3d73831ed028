//! The network boundary as the domain sees it: which hosts are inside the deployment's
//! network ([`hosts`]) and which text points outside it ([`references`]). Pure functions:
//! the connections themselves are made (and checked again after DNS) elsewhere.

pub mod hosts;
pub mod references;

pub use hosts::{InternalHosts, parse_host, url_hosts};
pub use references::{ExternalReference, ReferenceKind, ReferenceScanner};
