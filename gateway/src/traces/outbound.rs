//! What an upstream request carries of the trace: the current context, written as W3C
//! `traceparent` (and `tracestate`, `baggage` when there are any) into its HTTP headers and into
//! its MCP `params._meta`. This runs on every upstream request while tracing is on, sampled or
//! not (an unsampled context still propagates, flags `00`), so the common case is written by
//! hand: the `traceparent` hex-encoded into a fixed buffer, and `_meta` spliced in front of the
//! params' other members without parsing them.

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::Context;
use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::propagation::{Injector, TextMapPropagator as _};
use opentelemetry::trace::{TraceContextExt as _, TraceFlags};
use serde_json::value::RawValue;

/// The current context as it is written out.
struct Propagated {
    /// `00-<trace id>-<span id>-<flags>`.
    traceparent: [u8; 55],
    /// The span's `tracestate`, when it has one.
    tracestate: Option<String>,
    /// The context's `baggage` header, when it has any.
    baggage: Option<String>,
}

impl Propagated {
    /// The current context's, when tracing is on and it has a span to propagate.
    fn current() -> Option<Propagated> {
        if !super::on() {
            return None;
        }
        Context::map_current(|context| {
            let span = context.span();
            let span = span.span_context();
            if !span.is_valid() {
                return None;
            }
            let mut traceparent = *b"00-00000000000000000000000000000000-0000000000000000-00";
            let flags = span.trace_flags() & TraceFlags::SAMPLED;
            hex::encode_to_slice(span.trace_id().to_bytes(), &mut traceparent[3..35]).expect("16 bytes fill 32");
            hex::encode_to_slice(span.span_id().to_bytes(), &mut traceparent[36..52]).expect("8 bytes fill 16");
            hex::encode_to_slice([flags.to_u8()], &mut traceparent[53..55]).expect("1 byte fills 2");
            // An empty `tracestate` says nothing and some servers refuse it.
            let tracestate = Some(span.trace_state().header()).filter(|state| !state.is_empty());
            let baggage = (!context.baggage().is_empty()).then(|| baggage(context)).flatten();
            Some(Propagated { traceparent, tracestate, baggage })
        })
    }

    fn traceparent(&self) -> &str {
        std::str::from_utf8(&self.traceparent).expect("hex and dashes are ASCII")
    }

    /// The `_meta` members, as JSON (without braces).
    fn meta_members(&self, out: &mut String) {
        out.push_str(r#""traceparent":""#);
        out.push_str(self.traceparent());
        out.push('"');
        for (key, value) in [("tracestate", &self.tracestate), ("baggage", &self.baggage)] {
            if let Some(value) = value {
                out.push_str(&format!(r#","{key}":{}"#, serde_json::Value::from(value.as_str())));
            }
        }
    }
}

/// The `baggage` header the W3C propagator writes for `context`.
fn baggage(context: &Context) -> Option<String> {
    struct Header(Option<String>);
    impl Injector for Header {
        fn set(&mut self, _key: &str, value: String) {
            self.0 = Some(value).filter(|value| !value.is_empty());
        }
    }
    let mut header = Header(None);
    opentelemetry_sdk::propagation::BaggagePropagator::new().inject_context(context, &mut header);
    header.0
}

/// Puts the current context in an upstream request's headers (`traceparent`, `tracestate`,
/// `baggage`), when tracing is on and there is one.
pub fn inject_headers(headers: &mut HeaderMap) {
    let Some(propagated) = Propagated::current() else { return };
    headers.insert(
        HeaderName::from_static("traceparent"),
        HeaderValue::from_bytes(&propagated.traceparent).expect("hex and dashes are a valid header value"),
    );
    for (name, value) in [("tracestate", &propagated.tracestate), ("baggage", &propagated.baggage)] {
        if let Some(value) = value.as_deref().and_then(|value| HeaderValue::from_str(value).ok()) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
}

/// Writes `,"params":` and `params` with the current context in `_meta` (replacing what the
/// client propagated there: the upstream's parent is ours), when tracing is on and there is a
/// context; returns false, having written nothing, otherwise.
pub fn write_params(params: Option<&RawValue>, out: &mut String) -> bool {
    let Some(propagated) = Propagated::current() else { return false };
    out.push_str(r#","params":"#);
    let text = params.map(|params| params.get().trim_start());
    match text {
        None => {
            out.push_str(r#"{"_meta":{"#);
            propagated.meta_members(out);
            out.push_str("}}");
        }
        // No `_meta` anywhere in them (nearly always): ours goes first, the rest as it was.
        Some(text) if !text.contains(r#""_meta""#) && text.starts_with('{') => {
            let rest = text[1..].trim_start();
            out.push_str(r#"{"_meta":{"#);
            propagated.meta_members(out);
            out.push('}');
            if !rest.starts_with('}') {
                out.push(',');
            }
            out.push_str(rest);
        }
        Some(text) => out.push_str(&merged(text, &propagated).unwrap_or_else(|| text.to_owned())),
    }
    true
}

/// `params` with the current context in `_meta`, when tracing is on and there is one; `None`
/// leaves `params` as they are.
pub fn inject_meta(params: Option<&RawValue>) -> Option<Box<RawValue>> {
    let mut written = String::new();
    if !write_params(params, &mut written) {
        return None;
    }
    let params = written.strip_prefix(r#","params":"#).expect("written first").to_owned();
    RawValue::from_string(params).ok()
}

/// `params` (a JSON object that has a `_meta` somewhere) with ours merged into its `_meta`:
/// the top level is read without parsing its values (arguments can be large); `_meta`, small,
/// is parsed. `None` when they are not an object.
fn merged(params: &str, propagated: &Propagated) -> Option<String> {
    let mut fields: std::collections::BTreeMap<&str, &RawValue> = serde_json::from_str(params).ok()?;
    let mut meta: serde_json::Map<String, serde_json::Value> = match fields.get("_meta") {
        Some(meta) => serde_json::from_str(meta.get()).ok()?,
        None => Default::default(),
    };
    meta.remove("tracestate");
    meta.remove("baggage");
    let mut ours = String::from("{");
    propagated.meta_members(&mut ours);
    ours.push('}');
    let ours: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&ours).expect("written as JSON");
    meta.extend(ours);
    let meta = crate::jsonrpc::raw(&meta);
    fields.insert("_meta", &meta);
    serde_json::to_string(&fields).ok()
}
