//! Incoming webhooks, the pure parts: [`signature`] (verifying each scheme's signature over the
//! raw body) and [`body`] (reading the body a sender posted). wf-app's `receive_webhook` does the
//! I/O around them; the fuzz targets `signature_verify` and `webhook_body` (fuzz/) call them.

pub mod body;
pub mod signature;
