//! Issue 17, conversions carried by an alias: `PUT .../fields/temperature {"type": "double",
//! "aliases": ["tempF"], "conversions": {"tempF": "(tempF - 32) * 5 / 9"}}` makes a device that
//! sends Fahrenheit under `tempF` feed the Celsius field correctly, on read, in both tiers, with
//! no data rewrite; a conversion that does not compile, reads another name, names a name the
//! field does not have, or has no type to convert into is refused with the cause.

use serde_json::{json, Value};

use crate::common::{write_events, Answer, TestServer, DAY0};

fn start() -> TestServer {
    // Queries read the cold files once compacted (not the hot rows still there).
    TestServer::compacting_on_demand("cold")
}

fn rows(server: &TestServer, key: &str, sql: &str) -> Vec<Value> {
    let answer = server.sql(key, sql);
    assert_eq!(answer.status, 200, "{sql}: {}", answer.text);
    answer.body["rows"].as_array().expect("rows").clone()
}

fn declare(server: &TestServer, key: &str, body: Value) -> Answer {
    server.put(
        "/api/v1/schema/metrics/climate/fields/temperature",
        key,
        &body,
    )
}

/// Celsius devices send `temperature`; old firmware sends Fahrenheit under `tempF`.
fn readings() -> Vec<Value> {
    [
        ("c1", "temperature", 20.0),
        ("f1", "tempF", 212.0),
        ("f2", "tempF", 32.0),
        ("c2", "temperature", 75.0),
    ]
    .iter()
    .enumerate()
    .map(|(i, (device, name, value))| {
        json!({"metrictype": "climate", "timestamp": DAY0 + i as i64 * 1000,
                   "device": device, *name: value})
    })
    .collect()
}

const FAHRENHEIT: &str = "(tempF - 32) * 5 / 9";

#[test]
fn an_alias_with_a_conversion_feeds_the_field_in_its_unit_in_both_tiers() {
    let server = start();
    let key = server.create_tenant("converted");
    write_events(&server, &key, &readings());
    let body = json!({"type": "double", "aliases": ["tempF"],
                      "conversions": {"tempF": FAHRENHEIT}});
    let declared = declare(&server, &key, body);
    assert_eq!(declared.status, 200, "{}", declared.text);
    let fields = declared.body["metric"]["fields"]
        .as_array()
        .expect("fields")
        .clone();
    let field = fields
        .iter()
        .find(|f| f["name"] == "temperature")
        .expect("temperature");
    assert_eq!(field["conversions"], json!({"tempF": FAHRENHEIT}));

    let all = "SELECT device, temperature FROM climate ORDER BY device";
    let expected = vec![
        json!(["c1", 20.0]),
        json!(["c2", 75.0]),
        json!(["f1", 100.0]),
        json!(["f2", 0.0]),
    ];
    assert_eq!(rows(&server, &key, all), expected);
    // Filters see converted values: raw `tempF` 212 is 100 °C, raw 32 is 0 °C.
    let warm = "SELECT device FROM climate WHERE temperature > 50 ORDER BY device";
    let cold_ones = "SELECT device FROM climate WHERE tempF < 10";
    assert_eq!(
        rows(&server, &key, warm),
        vec![json!(["c2"]), json!(["f1"])]
    );
    assert_eq!(rows(&server, &key, cold_ones), vec![json!(["f2"])]);

    // In Parquet, `tempF`'s statistics are Fahrenheit (32..212): a filter pushed to them would
    // keep or drop the wrong row groups, so the converted column is never pushed.
    let compacted = server.post("/api/v1/compact", &key, &json!({}));
    assert_eq!(compacted.status, 200, "{}", compacted.text);
    assert_eq!(
        rows(&server, &key, all),
        expected,
        "cold files convert the same"
    );
    assert_eq!(
        rows(&server, &key, warm),
        vec![json!(["c2"]), json!(["f1"])]
    );
    assert_eq!(rows(&server, &key, cold_ones), vec![json!(["f2"])]);
    let over = "SELECT count(*) FROM climate WHERE temperature BETWEEN 90 AND 110";
    assert_eq!(rows(&server, &key, over), vec![json!([1])]);

    let plan = rows(&server, &key, "EXPLAIN SELECT temperature FROM climate");
    let text: String = plan.iter().map(|r| r[1].as_str().unwrap_or("")).collect();
    assert!(
        text.contains("tempF converted by (tempF - 32) * 5 / 9"),
        "EXPLAIN shows the conversion: {text}"
    );

    // Nothing was rewritten: the raw rows hold what was sent.
    // Unquoted, `tempF` resolves ignoring case in strata_raw's columns too.
    let raw = "SELECT tempF FROM strata_raw('climate') WHERE device = 'f1'";
    let sent = rows(&server, &key, raw);
    assert!(sent[0][0].to_string().contains("212"), "{sent:?}");

    // A conversion that fails on the data (integer division by zero) reads NULL for those rows
    // instead of making the metric unreadable.
    let failing = declare(
        &server,
        &key,
        json!({"type": "integer", "aliases": ["tempF"], "conversions": {"tempF": "tempF / 0"}}),
    );
    assert_eq!(failing.status, 200, "{}", failing.text);
    let answer = rows(
        &server,
        &key,
        "SELECT device, temperature FROM climate ORDER BY device",
    );
    assert_eq!(
        answer,
        vec![
            json!(["c1", 20]),
            json!(["c2", 75]),
            json!(["f1", null]),
            json!(["f2", null])
        ]
    );

    // Redeclaring without conversions reads the values as sent again.
    let plain = declare(
        &server,
        &key,
        json!({"type": "double", "aliases": ["tempF"]}),
    );
    assert_eq!(plain.status, 200, "{}", plain.text);
    let f1 = "SELECT temperature FROM climate WHERE device = 'f1'";
    assert_eq!(rows(&server, &key, f1), vec![json!([212.0])]);
}

#[test]
fn a_conversion_that_reads_another_name_or_has_nothing_to_convert_is_refused() {
    let server = start();
    let key = server.create_tenant("refused");
    write_events(&server, &key, &readings());
    let refused = |body: Value| -> String {
        let answer = declare(&server, &key, body);
        assert_eq!(answer.status, 400, "{}", answer.text);
        answer.body["error"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let other = refused(json!({"type": "double", "aliases": ["tempF"],
                               "conversions": {"tempF": "tempF + humidity"}}));
    assert!(
        other.contains("reads \"humidity\" (at line 1, column 9)"),
        "{other}"
    );
    let unparsable = refused(json!({"type": "double", "aliases": ["tempF"],
                                    "conversions": {"tempF": "(tempF - ) * 2"}}));
    assert!(unparsable.contains("does not parse"), "{unparsable}");
    let not_a_name = refused(json!({"type": "double", "conversions": {"tempF": FAHRENHEIT}}));
    assert!(
        not_a_name.contains("it is not a name of field \"temperature\""),
        "{not_a_name}"
    );
    let untyped = refused(json!({"aliases": ["tempF"], "conversions": {"tempF": FAHRENHEIT}}));
    assert!(untyped.contains("with a type"), "{untyped}");
    // Nothing refused was applied: `tempF` is still an unknown field of its own.
    let schema = server.get("/api/v1/schema", &key);
    let fields = schema.body["metrics"][0]["fields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        fields.iter().all(|f| f["name"] != "temperature"),
        "{fields:#?}"
    );
}
