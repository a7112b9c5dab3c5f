//! Splitting write bodies into events: every body form, whole-body errors with positions, and
//! per-event errors with correct indices.

use strata_core::Limits;
use strata_ingest::{split_body, BodyError, BodyFormat, EventError, RawEvent};

fn limits() -> Limits {
    Limits::default()
}

fn split(body: &[u8], format: BodyFormat) -> Vec<RawEvent<'_>> {
    split_body(body, format, &limits()).unwrap()
}

fn err_of(event: &RawEvent<'_>) -> EventError {
    event.parsed.clone().unwrap_err()
}

#[test]
fn json_single_object_is_one_event_with_its_bytes() {
    let body = b"  {\"metrictype\":\"m\",\"timestamp\":1,\"a\":1}\n";
    let events = split(body, BodyFormat::Json);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].index, 0);
    assert_eq!(
        events[0].raw,
        b"{\"metrictype\":\"m\",\"timestamp\":1,\"a\":1}"
    );
    let map = events[0].parsed.as_ref().unwrap();
    assert_eq!(map["a"], serde_json::json!(1));
    assert_eq!(map.len(), 3);
}

#[test]
fn json_array_elements_are_events_and_non_objects_are_rejected_alone() {
    let body = b"[ {\"a\":1},\n 5, \"x\", null, [1], {\"b\" : 2} ]";
    let events = split(body, BodyFormat::Json);
    assert_eq!(events.len(), 6);
    assert_eq!(
        events.iter().map(|e| e.index).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4, 5]
    );
    assert_eq!(events[0].raw, b"{\"a\":1}");
    assert!(events[0].parsed.is_ok());
    assert_eq!(events[1].raw, b"5");
    assert_eq!(
        err_of(&events[1]),
        EventError::NotAnObject { found: "number" }
    );
    assert_eq!(
        err_of(&events[2]),
        EventError::NotAnObject { found: "string" }
    );
    assert_eq!(
        err_of(&events[3]),
        EventError::NotAnObject { found: "null" }
    );
    assert_eq!(
        err_of(&events[4]),
        EventError::NotAnObject { found: "array" }
    );
    assert_eq!(events[5].raw, b"{\"b\" : 2}");
    assert_eq!(
        events[5].parsed.as_ref().unwrap()["b"],
        serde_json::json!(2)
    );
    assert_eq!(err_of(&events[1]).stage(), "parse");
    assert!(err_of(&events[1]).to_string().contains("number"));
}

#[test]
fn json_empty_array_has_no_events() {
    assert!(split(b"[]", BodyFormat::Json).is_empty());
    assert!(split(b" [ ] ", BodyFormat::Json).is_empty());
}

#[test]
fn empty_bodies_are_whole_body_errors() {
    for format in [BodyFormat::Json, BodyFormat::Ndjson] {
        for body in [&b""[..], b"   \n\r\n\t "] {
            let err = split_body(body, format, &limits()).unwrap_err();
            assert_eq!(err, BodyError::Empty, "{format:?} {body:?}");
            assert!(err.to_string().contains("empty"));
        }
    }
}

#[test]
fn json_scalar_body_is_not_object_or_array() {
    for (body, found) in [
        (&b"\"hello\""[..], "string"),
        (b" 42 ", "number"),
        (b"true", "boolean"),
        (b"null", "null"),
    ] {
        let err = split_body(body, BodyFormat::Json, &limits()).unwrap_err();
        assert_eq!(err, BodyError::NotObjectOrArray { found });
        assert!(err.to_string().contains(found));
    }
    // Not JSON at all is malformed, not "a scalar".
    assert!(matches!(
        split_body(b"tru", BodyFormat::Json, &limits()),
        Err(BodyError::Malformed { .. })
    ));
}

#[test]
fn malformed_json_body_reports_offset_line_and_column() {
    let body = b"{\"a\":x}";
    let err = split_body(body, BodyFormat::Json, &limits()).unwrap_err();
    let BodyError::Malformed {
        line,
        column,
        offset,
        ref message,
    } = err
    else {
        panic!("expected Malformed, got {err:?}");
    };
    assert_eq!((line, column, offset), (1, 6, 5));
    assert_eq!(body[offset], b'x');
    assert_eq!(message, "expected value");
    let text = err.to_string();
    assert!(text.contains("byte 5"), "{text}");
    assert!(text.contains("line 1, column 6"), "{text}");
}

#[test]
fn malformed_json_array_on_a_later_line_points_at_the_bad_byte() {
    let body = b"[\n  {\"a\":1},\n  {\"b\": }\n]";
    let err = split_body(body, BodyFormat::Json, &limits()).unwrap_err();
    let BodyError::Malformed {
        line,
        column,
        offset,
        ..
    } = err
    else {
        panic!("expected Malformed, got {err:?}");
    };
    assert_eq!(line, 3);
    assert_eq!(column, 9);
    assert_eq!(body[offset], b'}');
    assert!(err.to_string().contains("line 3"));
}

#[test]
fn ndjson_sent_as_json_gets_a_content_type_hint() {
    let err = split_body(b"{\"a\":1}\n{\"b\":2}\n", BodyFormat::Json, &limits()).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("trailing characters"), "{text}");
    assert!(text.contains("application/x-ndjson"), "{text}");
    assert!(text.contains("line 2"), "{text}");
}

#[test]
fn ndjson_lines_are_events_with_per_line_errors_and_blank_lines_skipped() {
    let body = b"{\"a\":1}\n\n   \r\n{\"a\": }\n[1]\ntru\n{\"b\":2}\r\n";
    let events = split(body, BodyFormat::Ndjson);
    assert_eq!(events.len(), 5);
    assert_eq!(
        events.iter().map(|e| e.index).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
    assert!(events[0].parsed.is_ok());

    let malformed = err_of(&events[1]);
    assert_eq!(events[1].raw, b"{\"a\": }");
    let EventError::Malformed { line, column, .. } = malformed else {
        panic!("expected Malformed, got {malformed:?}");
    };
    assert_eq!((line, column), (4, 7));
    assert!(malformed.to_string().contains("line 4"), "{malformed}");
    assert_eq!(malformed.stage(), "parse");

    assert_eq!(
        err_of(&events[2]),
        EventError::NotAnObject { found: "array" }
    );
    assert!(
        matches!(err_of(&events[3]), EventError::Malformed { line: 6, .. }),
        "a broken literal is malformed, not a boolean"
    );
    assert_eq!(
        events[4].raw, b"{\"b\":2}",
        "CR of CRLF is not part of the event"
    );
    assert_eq!(
        events[4].parsed.as_ref().unwrap()["b"],
        serde_json::json!(2)
    );
}

#[test]
fn ndjson_invalid_utf8_rejects_only_its_line() {
    let body = b"{\"a\":\"ok\"}\n{\"a\":\"\xff\"}\n{\"a\":\"fine\"}";
    let events = split(body, BodyFormat::Ndjson);
    assert_eq!(events.len(), 3);
    assert!(events[0].parsed.is_ok());
    assert!(matches!(
        err_of(&events[1]),
        EventError::Malformed { line: 2, .. }
    ));
    assert!(events[2].parsed.is_ok());
}

#[test]
fn oversized_events_are_rejected_per_event_in_every_form() {
    let limits = Limits {
        event_bytes: 20,
        ..Limits::default()
    };
    let big = format!("{{\"field\":\"{}\"}}", "x".repeat(40));
    let small = "{\"a\":1}";

    let ndjson = format!("{small}\n{big}\n{small}");
    let events = split_body(ndjson.as_bytes(), BodyFormat::Ndjson, &limits).unwrap();
    assert_eq!(events.len(), 3);
    assert!(events[0].parsed.is_ok());
    let err = err_of(&events[1]);
    assert_eq!(
        err,
        EventError::TooLarge {
            bytes: big.len(),
            limit: 20
        }
    );
    assert!(err.to_string().contains("limit is 20 bytes"));
    assert_eq!(events[1].raw, big.as_bytes());
    assert!(events[2].parsed.is_ok());

    let array = format!("[{small},{big}]");
    let events = split_body(array.as_bytes(), BodyFormat::Json, &limits).unwrap();
    assert!(events[0].parsed.is_ok());
    assert!(matches!(err_of(&events[1]), EventError::TooLarge { .. }));
    assert_eq!(events[1].index, 1);

    let events = split_body(big.as_bytes(), BodyFormat::Json, &limits).unwrap();
    assert_eq!(events.len(), 1);
    assert!(matches!(err_of(&events[0]), EventError::TooLarge { .. }));

    // Exactly at the limit is fine.
    let exact = format!("{{\"a\":\"{}\"}}", "x".repeat(12));
    assert_eq!(exact.len(), 20);
    let events = split_body(exact.as_bytes(), BodyFormat::Ndjson, &limits).unwrap();
    assert!(events[0].parsed.is_ok());
}

#[test]
fn too_deep_json_is_rejected_per_event_in_arrays_and_ndjson() {
    // serde_json refuses nesting beyond 128 levels while building an event's map; that stays a
    // per-event error that points at the right line.
    let deep = format!("{}1{}", "{\"k\":".repeat(200), "}".repeat(200));
    let array = format!("[{{\"a\":1}},\n{deep}]");
    let events = split(array.as_bytes(), BodyFormat::Json);
    assert_eq!(events.len(), 2);
    assert!(events[0].parsed.is_ok());
    let err = err_of(&events[1]);
    assert!(
        matches!(&err, EventError::Malformed { line: 2, message, .. } if message.contains("recursion")),
        "{err:?}"
    );

    let ndjson = format!("{{\"a\":1}}\n{deep}\n");
    let events = split(ndjson.as_bytes(), BodyFormat::Ndjson);
    assert!(matches!(
        err_of(&events[1]),
        EventError::Malformed { line: 2, .. }
    ));
}

#[test]
fn event_iterator_matches_split_body_and_reports_body_errors_up_front() {
    let body = b"{\"a\":1}\n\n5\n{\"b\":\n{\"c\":3}\n";
    let collected: Vec<_> = strata_ingest::events(body, BodyFormat::Ndjson, &limits())
        .unwrap()
        .map(|e| (e.index, e.raw, e.parsed.map_err(|err| err.to_string())))
        .collect();
    let split: Vec<_> = split(body, BodyFormat::Ndjson)
        .into_iter()
        .map(|e| (e.index, e.raw, e.parsed.map_err(|err| err.to_string())))
        .collect();
    assert_eq!(collected, split);
    assert_eq!(collected.len(), 4);
    assert!(collected[3].2.is_ok());

    assert!(matches!(
        strata_ingest::events(b"[{\"a\":1}, {\"b\"", BodyFormat::Json, &limits()),
        Err(BodyError::Malformed { .. })
    ));
    assert!(matches!(
        strata_ingest::events(b" \n ", BodyFormat::Ndjson, &limits()),
        Err(BodyError::Empty)
    ));
}

#[test]
fn ndjson_size_limit_ignores_surrounding_whitespace() {
    let limits = Limits {
        event_bytes: 7,
        ..Limits::default()
    };
    let body = b"      {\"a\":1}      \r\n";
    let events = split_body(body, BodyFormat::Ndjson, &limits).unwrap();
    assert_eq!(events[0].raw, b"{\"a\":1}");
    assert!(events[0].parsed.is_ok(), "{:?}", events[0].parsed);
}

/// Issue 14: a large NDJSON body is parsed in two halves on two threads. Events, indexes, raw
/// bytes and error positions (line numbers of the second half included) must be exactly what a
/// serial parse gives.
#[test]
fn a_large_ndjson_body_parsed_in_halves_equals_the_serial_parse() {
    let limits = Limits {
        event_bytes: 300,
        ..Limits::default()
    };
    let mut body = String::new();
    let mut line = 0;
    while body.len() < 3 * strata_ingest::PARALLEL_PARSE_MIN_BYTES {
        match line % 7 {
            0 => body.push('\n'),
            1 => body.push_str("{\"a\": 1, \"b\": \"x\\\"y\"}\r\n"),
            2 => body.push_str("{\"a\": oops}\n"),
            3 => body.push_str(&format!("{{\"big\": \"{}\"}}\n", "z".repeat(400))),
            4 => body.push_str("[1, 2]\n"),
            _ => body.push_str(&format!("{{\"n\": {line}, \"k\": 18446744073709551615}}\n")),
        }
        line += 1;
    }
    body.push_str("{\"last\": true}");
    let parallel = split_body(body.as_bytes(), BodyFormat::Ndjson, &limits).unwrap();
    let serial: Vec<RawEvent<'_>> =
        strata_ingest::events(body.as_bytes(), BodyFormat::Ndjson, &limits)
            .unwrap()
            .collect();
    assert_eq!(parallel.len(), serial.len());
    for (ours, theirs) in parallel.iter().zip(&serial) {
        assert_eq!(ours.index, theirs.index);
        assert_eq!(ours.raw, theirs.raw);
        assert_eq!(ours.parsed, theirs.parsed, "event {}", ours.index);
    }
    // The second half holds malformed lines, so their line numbers were checked above.
    let last_malformed = parallel.iter().rev().find_map(|e| match &e.parsed {
        Err(EventError::Malformed { line, .. }) => Some(*line),
        _ => None,
    });
    assert!(last_malformed.is_some_and(|line| line > body.lines().count() / 2));
}
