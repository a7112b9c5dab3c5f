//! The reader's side of a running query: batches arrive from the query task over a bounded
//! channel, the stream ends with a timeout error at the deadline, and dropping it aborts the
//! task.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream};
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, Sleep};

use crate::error::{DeadlineExceeded, QueryError};
use crate::meter::QueryMeter;

/// What the query task tells the reader, in order: the schema (or a failure), then batches.
pub(crate) enum Event {
    Schema(SchemaRef),
    Batch(datafusion::error::Result<RecordBatch>),
    Failed(QueryError),
}

/// Aborts the query task when the reader drops the result: its DataFusion stream (and every task
/// that stream spawned) is dropped at the task's next await point.
pub(crate) struct AbortOnDrop(pub(crate) JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The reader's side of the query task's channel.
pub(crate) struct ReceivedStream {
    received: mpsc::Receiver<Event>,
    _task: AbortOnDrop,
    schema: SchemaRef,
}

impl ReceivedStream {
    pub(crate) fn new(
        received: mpsc::Receiver<Event>,
        task: AbortOnDrop,
        schema: SchemaRef,
    ) -> Self {
        ReceivedStream {
            received,
            _task: task,
            schema,
        }
    }
}

impl Stream for ReceivedStream {
    type Item = datafusion::error::Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.received.poll_recv(cx).map(|event| match event? {
            Event::Batch(batch) => Some(batch),
            Event::Failed(error) => Some(Err(DataFusionError::External(Box::new(error)))),
            Event::Schema(_) => Some(Err(DataFusionError::Internal(
                "a second result schema".to_string(),
            ))),
        })
    }
}

impl RecordBatchStream for ReceivedStream {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

/// Ends a result stream with a timeout error once the query deadline passes.
pub(crate) struct DeadlineStream {
    inner: SendableRecordBatchStream,
    sleep: Pin<Box<Sleep>>,
    timeout: Duration,
    schema: SchemaRef,
    expired: bool,
    /// Times the statement until this stream is dropped, and notes an error it ended with.
    meter: QueryMeter,
}

impl DeadlineStream {
    pub(crate) fn new(
        inner: SendableRecordBatchStream,
        (deadline, timeout): (Instant, Duration),
        schema: SchemaRef,
        meter: QueryMeter,
    ) -> Self {
        DeadlineStream {
            inner,
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            timeout,
            schema,
            expired: false,
            meter,
        }
    }
}

impl Stream for DeadlineStream {
    type Item = datafusion::error::Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.expired {
            return Poll::Ready(None);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.expired = true;
            self.meter.fail();
            let timeout = self.timeout;
            return Poll::Ready(Some(Err(DataFusionError::External(Box::new(
                DeadlineExceeded(timeout),
            )))));
        }
        let next = self.inner.poll_next_unpin(cx);
        if let Poll::Ready(Some(Err(_))) = next {
            self.meter.fail();
        }
        next
    }
}

impl RecordBatchStream for DeadlineStream {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}
