//! An OTLP/gRPC client for the tests: tonic's own client (`tonic::client::Grpc`,
//! the code its generated clients call) over hyper-util's h2c client, with
//! the `X-KMS-*` headers as metadata, and what a refusal's
//! `grpc-status-details-bin` says (`ErrorInfo.reason`, `RetryInfo`).

use std::net::SocketAddr;

use http::uri::PathAndQuery;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use prost::Message;
use telegate::http::error::{ErrorInfo, RetryInfo, Status};
use telegate::protocol::grpc::METRICS_EXPORT;
use tonic::codec::ProstCodec;
use tonic::metadata::{MetadataKey, MetadataValue};

/// Calls MetricsService/Export on `addr` with `headers` as metadata.
pub async fn export_metrics(
    addr: SocketAddr,
    headers: &[(&str, String)],
    export: ExportMetricsServiceRequest,
) -> Result<ExportMetricsServiceResponse, tonic::Status> {
    let channel: Client<HttpConnector, tonic::body::BoxBody> =
        Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build_http();
    let origin = format!("http://{addr}").parse().unwrap();
    let mut grpc = tonic::client::Grpc::with_origin(channel, origin);
    grpc.ready().await.unwrap();
    let mut request = tonic::Request::new(export);
    request.set_timeout(std::time::Duration::from_secs(10));
    for (name, value) in headers {
        let key = MetadataKey::from_bytes(name.to_ascii_lowercase().as_bytes()).unwrap();
        let value: MetadataValue<_> = value.parse().unwrap();
        request.metadata_mut().insert(key, value);
    }
    let codec = ProstCodec::<ExportMetricsServiceRequest, ExportMetricsServiceResponse>::default();
    let response = grpc
        .unary(request, PathAndQuery::from_static(METRICS_EXPORT), codec)
        .await?;
    Ok(response.into_inner())
}

/// A refusal's code, `ErrorInfo.reason` and `RetryInfo` delay (seconds).
pub fn refusal(status: &tonic::Status) -> (tonic::Code, String, Option<i64>) {
    let details =
        Status::decode(status.details()).expect("grpc-status-details-bin is a google.rpc.Status");
    let mut reason = String::new();
    let mut retry = None;
    for any in &details.details {
        match any.type_url.as_str() {
            "type.googleapis.com/google.rpc.ErrorInfo" => {
                reason = ErrorInfo::decode(&any.value[..]).unwrap().reason;
            }
            "type.googleapis.com/google.rpc.RetryInfo" => {
                retry = RetryInfo::decode(&any.value[..])
                    .unwrap()
                    .retry_delay
                    .map(|d| d.seconds);
            }
            _ => {}
        }
    }
    assert_eq!(
        details.code,
        status.code() as i32,
        "details agree with grpc-status"
    );
    (status.code(), reason, retry)
}
