//! What the cluster counts, for `/metrics`: broadcasts published to the other nodes and
//! those that could not be, broadcasts and requests received from them, and whether this
//! node is subscribed to Redis now. [`ClusterMetrics::off`] counts nothing.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// The cluster's series (or nothing, when metrics are off).
pub struct ClusterMetrics {
    series: Option<Series>,
}

struct Series {
    published: IntCounter,
    publish_failed: IntCounter,
    received: IntCounter,
    requests: [IntCounter; 2],
    subscribed: IntGauge,
}

impl ClusterMetrics {
    /// Metrics that count nothing.
    pub fn off() -> Self {
        ClusterMetrics { series: None }
    }

    /// The series, registered in `registry`.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let counter = |name: &str, help: &str| -> prometheus::Result<IntCounter> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let requests = IntCounterVec::new(
            Opts::new(
                "courier_cluster_requests_total",
                "Requests from other nodes on the adapter's request channel, by outcome",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        let subscribed = IntGauge::new(
            "courier_cluster_redis_subscribed",
            "1 while this node is subscribed to the cluster's Redis channels",
        )?;
        registry.register(Box::new(subscribed.clone()))?;
        Ok(ClusterMetrics {
            series: Some(Series {
                published: counter(
                    "courier_cluster_published_total",
                    "Messages published to Redis for the other nodes",
                )?,
                publish_failed: counter(
                    "courier_cluster_publish_failed_total",
                    "Messages for the other nodes that could not be published (Redis down or \
                     the queue full): their recipients on other nodes missed them",
                )?,
                received: counter(
                    "courier_cluster_received_total",
                    "Broadcasts received from the other nodes and delivered here",
                )?,
                requests: [
                    requests.with_label_values(&["answered"]),
                    requests.with_label_values(&["ignored"]),
                ],
                subscribed,
            }),
        })
    }

    /// `n` messages were published.
    pub(crate) fn published(&self, n: usize) {
        if let Some(s) = &self.series {
            s.published.inc_by(n as u64);
        }
    }

    /// `n` messages could not be published.
    pub(crate) fn publish_failed(&self, n: usize) {
        if let Some(s) = &self.series {
            s.publish_failed.inc_by(n as u64);
        }
    }

    /// A broadcast from another node was delivered here.
    pub fn received(&self) {
        if let Some(s) = &self.series {
            s.received.inc();
        }
    }

    /// A request from another node was answered (`true`) or ignored.
    pub fn request(&self, answered: bool) {
        if let Some(s) = &self.series {
            s.requests[usize::from(!answered)].inc();
        }
    }

    /// Whether this node is subscribed now.
    pub fn subscribed(&self, on: bool) {
        if let Some(s) = &self.series {
            s.subscribed.set(i64::from(on));
        }
    }
}
