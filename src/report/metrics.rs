//! Prometheus metrics (`--metrics ADDR:PORT`): the third view of the
//! reports, after text and JSON, for dashboards and alerts.
//!
//! This file owns the metric names, their labels, the `/metrics` endpoint
//! (prometheus-client for the OpenMetrics text, tiny_http for HTTP) and its
//! one serving thread. The names follow Istio's TCP metrics with the prefix
//! `mtlsniff_` instead of `istio_`, and every flow series carries Istio's
//! `connection_security_policy` label (`mutual_tls`, `none`, `unknown`), so
//! a PromQL query or alert written for Istio carries over by renaming the
//! metric. Label values are small closed sets (class, outcome, basis, mesh,
//! ending): no IP, port or identity is ever a label, so cardinality is
//! bounded (at most a few hundred series). With a pods list
//! (`--k8s-pods`) the connection and byte series also carry Istio's
//! `source_workload`, `source_workload_namespace`, `destination_workload`
//! and `destination_workload_namespace`, capped at
//! `workloads::MAX_WORKLOAD_SERIES` sets (then `other`, counted in
//! `mtlsniff_workload_series_capped`); without one those series are as
//! before.
//!
//! The serving thread is the one thread made outside `pipeline.rs`: it shares
//! nothing with the pipeline but prometheus-client's atomic metrics and the
//! `Gauges`, and it must outlive the pipeline (`--metrics-linger`). Counters
//! are updated by the output stage, per verdict and per close, never per
//! packet; packet, loss and table counters are read from `Gauges` at scrape
//! time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::report::gauges::Gauges;
use crate::report::workloads::{LabelCap, WorkloadLabels};
use crate::verdict::{Class, Decided, FlowClose, Verdict};
use crate::workload::{Placement, Shared};

/// OpenMetrics text, which Prometheus negotiates and parses.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Istio's `connection_security_policy` for a class: only a client
/// certificate makes `mutual_tls`; server-only TLS is `none` at the mesh
/// level, as Istio reports it for non-mTLS traffic.
pub fn security_policy(class: Class) -> &'static str {
    match class {
        Class::Mtls => "mutual_tls",
        Class::Tls | Class::Plaintext => "none",
        Class::Unknown => "unknown",
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FlowLabels {
    class: &'static str,
    outcome: &'static str,
    basis: &'static str,
    mesh: &'static str,
    connection_security_policy: &'static str,
}

impl FlowLabels {
    fn of(d: &Decided) -> Self {
        FlowLabels {
            class: d.class.as_str(),
            outcome: d.outcome.as_str(),
            basis: d.basis.as_str(),
            mesh: d.mesh.map_or("none", |m| m.as_str()),
            connection_security_policy: security_policy(d.class),
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClosedLabels {
    class: &'static str,
    outcome: &'static str,
    basis: &'static str,
    mesh: &'static str,
    connection_security_policy: &'static str,
    ended: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabels {
    class: &'static str,
    connection_security_policy: &'static str,
}

impl ClassLabels {
    fn of(class: Class) -> Self {
        ClassLabels {
            class: class.as_str(),
            connection_security_policy: security_policy(class),
        }
    }
}

fn time_to_verdict_histogram() -> Histogram {
    // 100 us .. ~26 s, by fours: a LAN handshake lands in the first
    // buckets, a TLS 1.3 verdict waiting on the server's next record later.
    Histogram::new(exponential_buckets(0.0001, 4.0, 10))
}

/// The counters the output stage updates.
#[derive(Debug, Clone)]
pub struct Metrics {
    opened: Family<(FlowLabels, WorkloadLabels), Counter>,
    closed: Family<(ClosedLabels, WorkloadLabels), Counter>,
    sent_bytes: Family<(ClassLabels, WorkloadLabels), Counter>,
    received_bytes: Family<(ClassLabels, WorkloadLabels), Counter>,
    time_to_verdict: Family<ClassLabels, Histogram, fn() -> Histogram>,
    /// With `--k8s-pods`: the cap on workload label sets, flows past it,
    /// flows with an identity mismatch.
    workloads: Option<WorkloadCounters>,
}

#[derive(Debug, Clone, Default)]
struct WorkloadCounters {
    cap: LabelCap,
    capped: Counter,
    mismatches: Counter,
}

impl Metrics {
    /// The metrics and the registry that exposes them (with the gauges,
    /// read at scrape time).
    pub fn new(gauges: Arc<Gauges>) -> (Metrics, Registry) {
        let m = Metrics {
            opened: Family::default(),
            closed: Family::default(),
            sent_bytes: Family::default(),
            received_bytes: Family::default(),
            time_to_verdict: Family::new_with_constructor(time_to_verdict_histogram),
            workloads: None,
        };
        let mut r = Registry::default();
        r.register(
            "mtlsniff_tcp_connections_opened",
            "TCP flows with a verdict (one per flow, counted at the verdict), like istio_tcp_connections_opened_total",
            m.opened.clone(),
        );
        r.register(
            "mtlsniff_tcp_connections_closed",
            "TCP flows that ended after their verdict, by how they ended, like istio_tcp_connections_closed_total",
            m.closed.clone(),
        );
        r.register(
            "mtlsniff_tcp_sent_bytes",
            "TCP payload bytes client to server, counted when the flow closes, like istio_tcp_sent_bytes_total",
            m.sent_bytes.clone(),
        );
        r.register(
            "mtlsniff_tcp_received_bytes",
            "TCP payload bytes server to client, counted when the flow closes, like istio_tcp_received_bytes_total",
            m.received_bytes.clone(),
        );
        r.register(
            "mtlsniff_time_to_verdict_seconds",
            "Packet time from a flow's first packet to its verdict",
            m.time_to_verdict.clone(),
        );
        r.register_collector(Box::new(GaugeCollector(gauges)));
        (m, r)
    }

    /// With Istio's workload labels (`--k8s-pods`, `--k8s`) and their
    /// counters; with the pods watch, its own (`mtlsniff_k8s_*`).
    pub fn with_workloads(gauges: Arc<Gauges>, dir: Shared) -> (Metrics, Registry) {
        let (mut m, mut r) = Metrics::new(gauges);
        r.register_collector(Box::new(WatchCollector(dir)));
        let w = WorkloadCounters::default();
        r.register(
            "mtlsniff_workload_series_capped",
            "Series updates (verdicts and closes) whose workload labels were written as other: the cap on distinct workload label sets was reached",
            w.capped.clone(),
        );
        r.register(
            "mtlsniff_identity_mismatches",
            "Flows where a SPIFFE id seen on the wire is not the namespace and service account of the pod at that address",
            w.mismatches.clone(),
        );
        m.workloads = Some(w);
        (m, r)
    }

    /// The workload labels of one flow (empty without a pods list).
    fn workload_labels(&self, p: Option<&Placement>) -> WorkloadLabels {
        let (Some(w), Some(p)) = (&self.workloads, p) else {
            return Vec::new();
        };
        let (labels, capped) = w.cap.labels(p);
        if capped {
            w.capped.inc();
        }
        labels
    }

    pub fn on_verdict(&self, v: &Verdict) {
        self.on_verdict_placed(v, None);
    }

    /// A verdict, with its workloads when a pods list is loaded.
    pub fn on_verdict_placed(&self, v: &Verdict, p: Option<&Placement>) {
        if let (Some(w), Some(p)) = (&self.workloads, p)
            && !p.mismatches.is_empty()
        {
            w.mismatches.inc();
        }
        let d = Decided {
            class: v.class,
            outcome: v.outcome,
            basis: v.basis,
            mesh: v.mesh.as_ref().map(|m| m.mesh),
        };
        let wl = self.workload_labels(p);
        self.opened.get_or_create(&(FlowLabels::of(&d), wl)).inc();
        let micros = v.ts.0.saturating_sub(v.first_seen.0).max(0);
        self.time_to_verdict
            .get_or_create(&ClassLabels::of(v.class))
            .observe(micros as f64 / 1e6);
    }

    pub fn on_close(&self, c: &FlowClose) {
        self.on_close_placed(c, None);
    }

    /// A close, with its workloads when a pods list is loaded.
    pub fn on_close_placed(&self, c: &FlowClose, p: Option<&Placement>) {
        let f = FlowLabels::of(&c.decided);
        let wl = self.workload_labels(p);
        let closed = ClosedLabels {
            class: f.class,
            outcome: f.outcome,
            basis: f.basis,
            mesh: f.mesh,
            connection_security_policy: f.connection_security_policy,
            ended: c.ending.as_str(),
        };
        self.closed.get_or_create(&(closed, wl.clone())).inc();
        let class = (ClassLabels::of(c.decided.class), wl);
        self.sent_bytes
            .get_or_create(&class)
            .inc_by(c.bytes_to_server);
        self.received_bytes
            .get_or_create(&class)
            .inc_by(c.bytes_to_client);
    }
}

/// Packet, loss and flow-table counters, read from the gauges per scrape.
#[derive(Debug)]
struct GaugeCollector(Arc<Gauges>);

impl Collector for GaugeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.0.snapshot();
        let counters: [(&str, &str, u64); 11] = [
            (
                "mtlsniff_packets",
                "Frames read from the capture",
                s.packets,
            ),
            (
                "mtlsniff_kernel_received_packets",
                "Packets the kernel passed to the capture (live)",
                s.kernel.received,
            ),
            (
                "mtlsniff_kernel_dropped_packets",
                "Packets the kernel dropped: the capture buffer was full (live)",
                s.kernel.dropped,
            ),
            (
                "mtlsniff_interface_dropped_packets",
                "Packets the interface dropped (live)",
                s.kernel.if_dropped,
            ),
            (
                "mtlsniff_channel_dropped_segments",
                "Segments dropped because a worker's queue was full (live)",
                s.dropped_segments,
            ),
            (
                "mtlsniff_flows_created",
                "Flows the engines started tracking",
                s.engine.flows_created,
            ),
            (
                "mtlsniff_flows_expired",
                "Flows reported at idle expiry",
                s.engine.flows_expired,
            ),
            (
                "mtlsniff_flows_evicted_embryonic",
                "SYN-only flows evicted from a full flow table",
                s.engine.flows_evicted_embryonic,
            ),
            (
                "mtlsniff_flows_unanswered",
                "Unanswered SYNs (no SYN-ACK, payload, FIN or RST): counted, not verdicts",
                s.engine.flows_unanswered,
            ),
            (
                "mtlsniff_flows_table_full",
                "Segments of new flows refused: the flow table was full of undecided flows",
                s.engine.flows_table_full,
            ),
            (
                "mtlsniff_stream_gaps",
                "Holes in reassembled streams given up (packet loss)",
                s.engine.gaps,
            ),
        ];
        for (name, help, value) in counters {
            let c = ConstCounter::new(value);
            let e = encoder.encode_descriptor(name, help, None, c.metric_type())?;
            c.encode(e)?;
        }
        let finished = ConstGauge::new(i64::from(s.finished));
        let e = encoder.encode_descriptor(
            "mtlsniff_input_finished",
            "1 once the input is done (file read, or live capture stopped): the values are final",
            None,
            finished.metric_type(),
        )?;
        finished.encode(e)
    }
}

/// The pods watch's counts (`--k8s`), read at scrape time; nothing for a
/// pods list.
#[derive(Debug)]
struct WatchCollector(Shared);

impl Collector for WatchCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (pods, dropped, watch) = {
            let d = self.0.read();
            (d.pods, d.dropped, d.watch)
        };
        let Some(w) = watch else {
            return Ok(());
        };
        let pods = ConstGauge::new(i64::try_from(pods).unwrap_or(i64::MAX));
        let e = encoder.encode_descriptor(
            "mtlsniff_k8s_pods",
            "Pods the Kubernetes watch knows now (listed or added, not deleted)",
            None,
            pods.metric_type(),
        )?;
        pods.encode(e)?;
        let counters = [
            (
                "mtlsniff_k8s_watch_errors",
                "Errors of the pods watch after its first list; each is retried with backoff",
                w.errors,
            ),
            (
                "mtlsniff_k8s_watch_relists",
                "Times the pods were listed again because the watch could not resume",
                w.relists,
            ),
            (
                "mtlsniff_k8s_pods_dropped",
                "Pods not stored: the workloads' share of --memory was full",
                dropped,
            ),
        ];
        for (name, help, value) in counters {
            let c = ConstCounter::new(value);
            let e = encoder.encode_descriptor(name, help, None, c.metric_type())?;
            c.encode(e)?;
        }
        Ok(())
    }
}

/// The text a scrape returns.
pub fn render(registry: &Registry) -> String {
    let mut body = String::new();
    // Writing into a String cannot fail; an encoder error would leave a
    // partial body, which Prometheus rejects visibly.
    let _ = prometheus_client::encoding::text::encode(&mut body, registry);
    body
}

/// The `/metrics` endpoint on its own thread.
pub struct MetricsServer {
    server: Arc<tiny_http::Server>,
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Listen on `addr` (port 0: any free port, see `addr()`) and serve.
    pub fn start(addr: SocketAddr, registry: Registry) -> Result<MetricsServer, String> {
        let server = tiny_http::Server::http(addr)
            .map_err(|e| format!("--metrics {addr}: cannot listen: {e}"))?;
        let bound = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| format!("--metrics {addr}: not an IP listener"))?;
        let server = Arc::new(server);
        let serving = Arc::clone(&server);
        let thread = std::thread::Builder::new()
            .name("mtlsniff-metrics".into())
            .spawn(move || serve(&serving, &registry))
            .map_err(|e| format!("--metrics: cannot start the server thread: {e}"))?;
        Ok(MetricsServer {
            server,
            addr: bound,
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(server: &tiny_http::Server, registry: &Registry) {
    for request in server.incoming_requests() {
        let path = request.url().split('?').next().unwrap_or_default();
        let response = match (request.method(), path) {
            (tiny_http::Method::Get | tiny_http::Method::Head, "/metrics") => {
                let header = tiny_http::Header::from_bytes("Content-Type", CONTENT_TYPE);
                let mut r = tiny_http::Response::from_string(render(registry));
                if let Ok(h) = header {
                    r.add_header(h);
                }
                r
            }
            (_, "/") => tiny_http::Response::from_string("mtlsniff: metrics at /metrics\n"),
            _ => {
                tiny_http::Response::from_string("not found: try /metrics\n").with_status_code(404)
            }
        };
        // A scraper that hung up is its own problem.
        let _ = request.respond(response);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::segment::{Endpoint, Timestamp};
    use crate::classify::mesh::{Fingerprint, Mesh};
    use crate::verdict::{Basis, Ending, Outcome};

    #[test]
    fn verdicts_and_closes_are_counted_with_istio_labels() {
        let gauges = Arc::new(Gauges::default());
        gauges.publish_capture(42, 0, 0, None);
        let (m, registry) = Metrics::new(gauges);
        let ep = |p| Endpoint {
            ip: "10.0.0.1".parse().unwrap(),
            port: p,
        };
        let v = Verdict {
            class: Class::Mtls,
            outcome: Outcome::Ok,
            basis: Basis::Inferred,
            mesh: Some(Fingerprint {
                mesh: Mesh::IstioHbone,
                evidence: String::new(),
            }),
            ..Verdict::new(ep(1), ep(15008), Timestamp(0), Timestamp(2_000))
        };
        m.on_verdict(&v);
        m.on_close(&FlowClose {
            ts: Timestamp(9_000),
            first_seen: Timestamp(0),
            client: ep(1),
            server: ep(15008),
            redirected_to: None,
            ending: Ending::Fin,
            decided: Decided {
                class: Class::Mtls,
                outcome: Outcome::Ok,
                basis: Basis::Inferred,
                mesh: Some(Mesh::IstioHbone),
            },
            bytes_to_server: 100,
            bytes_to_client: 2_000,
            packets: 9,
        });
        let text = render(&registry);
        for want in [
            r#"mtlsniff_tcp_connections_opened_total{class="mtls",outcome="ok",basis="inferred",mesh="istio-hbone",connection_security_policy="mutual_tls"} 1"#,
            r#"ended="fin"} 1"#,
            r#"mtlsniff_tcp_received_bytes_total{class="mtls",connection_security_policy="mutual_tls"} 2000"#,
            r#"mtlsniff_time_to_verdict_seconds_bucket{le="0.0064",class="mtls",connection_security_policy="mutual_tls"} 1"#,
            "mtlsniff_packets_total 42",
            "mtlsniff_input_finished 0",
            "# EOF",
        ] {
            assert!(text.contains(want), "lacks {want}:\n{text}");
        }
    }
}
