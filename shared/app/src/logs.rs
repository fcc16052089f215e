//! Log lines pass the same scrubber as stored records: every secret value a worker of this
//! process resolved ([`remember_secrets`], called where an execution's scrubber is built) is
//! removed, in all its forms ([`wf_core::scrub::Scrubber`]), from every line a subscriber
//! writes through [`ScrubbingWriter`] (the Lambda functions' JSON logs, `wf dev`'s and `wf`'s
//! stderr). A line is scrubbed whole, whichever field or span carries the value.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::{Arc, RwLock};

use tracing_subscriber::fmt::MakeWriter;
use wf_core::scrub::Scrubber;

/// The secret values seen by this process, and the scrubber of all of them.
#[derive(Default)]
struct Known {
    values: BTreeSet<String>,
    scrubber: Arc<Scrubber>,
}

static KNOWN: RwLock<Option<Known>> = RwLock::new(None);

/// Add secret values to what log lines are scrubbed of (for the life of the process).
pub fn remember_secrets(values: &[String]) {
    if values.is_empty() {
        return;
    }
    {
        let known = KNOWN.read().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = known.as_ref()
            && values.iter().all(|v| k.values.contains(v))
        {
            return;
        }
    }
    let mut known = KNOWN.write().unwrap_or_else(|p| p.into_inner());
    let k = known.get_or_insert_with(Known::default);
    k.values
        .extend(values.iter().filter(|v| !v.is_empty()).cloned());
    k.scrubber = Arc::new(Scrubber::new(&k.values));
}

/// The scrubber of every secret value this process has seen.
pub fn scrubber() -> Arc<Scrubber> {
    KNOWN
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .map(|k| k.scrubber.clone())
        .unwrap_or_default()
}

/// A `MakeWriter` whose writers hold a formatted event and write it scrubbed when dropped
/// (tracing-subscriber's fmt layer writes one event per writer).
#[derive(Debug, Clone)]
pub struct ScrubbingWriter<M>(pub M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for ScrubbingWriter<M> {
    type Writer = ScrubbedLine<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        ScrubbedLine {
            inner: self.0.make_writer(),
            buf: Vec::new(),
        }
    }
}

/// One event's text, written scrubbed on drop.
pub struct ScrubbedLine<W: Write> {
    inner: W,
    buf: Vec<u8>,
}

impl<W: Write> ScrubbedLine<W> {
    fn emit(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&self.buf);
        let clean = scrubber().str(&text).into_owned();
        self.buf.clear();
        self.inner.write_all(clean.as_bytes())?;
        self.inner.flush()
    }
}

impl<W: Write> Write for ScrubbedLine<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for ScrubbedLine<W> {
    fn drop(&mut self) {
        let _ = self.emit();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn log_lines_lose_every_remembered_secret() {
        remember_secrets(&["l0g-s3cret-value".to_string()]);
        let buffer = Buffer::default();
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(ScrubbingWriter(move || sink.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(
                url = "https://x/?k=l0g-s3cret-value",
                "failed: L0G-S3CRET-VALUE"
            );
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("***"), "{text}");
        assert!(!text.to_lowercase().contains("l0g-s3cret-value"), "{text}");
    }
}
