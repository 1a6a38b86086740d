//! Sign-in protocol cores (sans I/O). The WS-Federation and OpenID Connect flows land here;
//! what every flow shares lives beside them.

pub mod backchannel;
pub mod form;
pub mod oidc;
pub mod return_url;
pub mod state;
pub mod wsfed;
