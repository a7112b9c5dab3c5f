//! Behaviour of the SQLite catalog against a real database file in a temp dir.

use std::path::PathBuf;
use std::sync::Arc;

use strata_catalog::{
    CatalogError, ColdManifestStore, DynCatalog, IncomingNames, IncomingStatsDelta, SchemaChange,
    SchemaRegistry, SettingsPatch, SettingsStore, SqliteCatalog, TenantDirectory, TenantSettings,
};
use strata_core::{FieldType, JsonKind, Role, TenantId, TimestampUnit};
use tempfile::TempDir;

struct Fixture {
    dir: TempDir,
    catalog: SqliteCatalog,
}

impl Fixture {
    async fn new() -> Self {
        let dir = TempDir::new().unwrap();
        let catalog = SqliteCatalog::open(&Self::db_path(&dir)).await.unwrap();
        Fixture { dir, catalog }
    }

    fn db_path(dir: &TempDir) -> PathBuf {
        dir.path().join("catalog.db")
    }

    async fn reopen(self) -> Self {
        let Fixture { dir, catalog } = self;
        drop(catalog);
        let catalog = SqliteCatalog::open(&Self::db_path(&dir)).await.unwrap();
        Fixture { dir, catalog }
    }

    async fn tenant(&self, name: &str) -> TenantId {
        self.catalog.create_tenant(name).await.unwrap().0.id
    }
}

fn create_metric(name: &str, aliases: &[&str]) -> SchemaChange {
    SchemaChange::CreateMetric {
        name: name.to_string(),
        aliases: strings(aliases),
    }
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|s| s.to_string()).collect()
}

fn update_metric(metric: &str) -> MetricPatch {
    MetricPatch {
        metric: metric.to_string(),
        rename_to: None,
        add_aliases: vec![],
        remove_aliases: vec![],
        timestamp_aliases: None,
        timestamp_patterns: None,
        series_keys: None,
        retention_days: None,
        timestamp_unit: None,
    }
}

/// Builder so each test names only the parts of an update it cares about.
struct MetricPatch {
    metric: String,
    rename_to: Option<String>,
    add_aliases: Vec<String>,
    remove_aliases: Vec<String>,
    timestamp_aliases: Option<Vec<String>>,
    timestamp_patterns: Option<Vec<String>>,
    series_keys: Option<Vec<String>>,
    retention_days: Option<u32>,
    timestamp_unit: Option<TimestampUnit>,
}

impl MetricPatch {
    fn retention_days(mut self, days: u32) -> Self {
        self.retention_days = Some(days);
        self
    }
    fn timestamp_unit(mut self, unit: TimestampUnit) -> Self {
        self.timestamp_unit = Some(unit);
        self
    }
    fn rename(mut self, to: &str) -> Self {
        self.rename_to = Some(to.to_string());
        self
    }
    fn add(mut self, aliases: &[&str]) -> Self {
        self.add_aliases = strings(aliases);
        self
    }
    fn remove(mut self, aliases: &[&str]) -> Self {
        self.remove_aliases = strings(aliases);
        self
    }
    fn timestamp_aliases(mut self, aliases: &[&str]) -> Self {
        self.timestamp_aliases = Some(strings(aliases));
        self
    }
    fn series_keys(mut self, keys: &[&str]) -> Self {
        self.series_keys = Some(strings(keys));
        self
    }
    fn build(self) -> SchemaChange {
        SchemaChange::UpdateMetric {
            metric: self.metric,
            rename_to: self.rename_to,
            add_aliases: self.add_aliases,
            remove_aliases: self.remove_aliases,
            timestamp_aliases: self.timestamp_aliases,
            timestamp_patterns: self.timestamp_patterns,
            series_keys: self.series_keys,
            retention_days: self.retention_days,
            timestamp_unit: self.timestamp_unit,
        }
    }
}

fn declare(metric: &str, field: &str, ty: Option<FieldType>, aliases: &[&str]) -> SchemaChange {
    SchemaChange::DeclareField {
        metric: metric.to_string(),
        field: field.to_string(),
        field_type: ty,
        aliases: strings(aliases),
        hidden: false,
        expression: None,
        conversions: Default::default(),
    }
}

fn update_field(metric: &str, field: &str) -> SchemaChange {
    SchemaChange::UpdateField {
        metric: metric.to_string(),
        field: field.to_string(),
        rename_to: None,
        field_type: None,
        add_aliases: vec![],
        remove_aliases: vec![],
        hidden: None,
    }
}

fn with_field_update(change: SchemaChange, f: impl FnOnce(&mut FieldEdit<'_>)) -> SchemaChange {
    let mut change = change;
    if let SchemaChange::UpdateField {
        rename_to,
        field_type,
        add_aliases,
        remove_aliases,
        hidden,
        ..
    } = &mut change
    {
        let mut edit = FieldEdit {
            rename_to,
            field_type,
            add_aliases,
            remove_aliases,
            hidden,
        };
        f(&mut edit);
    }
    change
}

struct FieldEdit<'a> {
    rename_to: &'a mut Option<String>,
    field_type: &'a mut Option<FieldType>,
    add_aliases: &'a mut Vec<String>,
    remove_aliases: &'a mut Vec<String>,
    hidden: &'a mut Option<bool>,
}

fn assert_conflict_naming(result: Result<impl std::fmt::Debug, CatalogError>, parts: &[&str]) {
    match result {
        Err(CatalogError::Conflict(message)) => {
            for part in parts {
                assert!(message.contains(part), "{message:?} should mention {part}");
            }
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
}

fn assert_invalid(result: Result<impl std::fmt::Debug, CatalogError>) -> String {
    match result {
        Err(CatalogError::Invalid(message)) => message,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn assert_not_found(result: Result<impl std::fmt::Debug, CatalogError>) -> String {
    match result {
        Err(CatalogError::NotFound(message)) => message,
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[tokio::test]
async fn tenants_are_created_once_and_listed() {
    let fx = Fixture::new().await;
    let (tenant, key) = fx.catalog.create_tenant("dpi").await.unwrap();
    assert_eq!(tenant.name, "dpi");
    assert_eq!(key.info.role, Role::Admin);
    assert_eq!(key.info.tenant, tenant.id);

    assert_conflict_naming(fx.catalog.create_tenant("dpi").await, &["\"dpi\""]);
    assert_invalid(fx.catalog.create_tenant("").await);
    assert_invalid(fx.catalog.create_tenant("a\nb").await);

    let other = fx.tenant("acme").await;
    assert_eq!(fx.catalog.tenant(tenant.id).await.unwrap(), tenant);
    assert_eq!(
        fx.catalog.tenant_by_name("dpi").await.unwrap(),
        Some(tenant.clone())
    );
    assert_eq!(fx.catalog.tenant_by_name("nobody").await.unwrap(), None);
    let names: Vec<_> = fx
        .catalog
        .list_tenants()
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.id, t.name))
        .collect();
    assert_eq!(
        names,
        vec![(tenant.id, "dpi".into()), (other, "acme".into())]
    );
    assert_not_found(fx.catalog.tenant(TenantId(9999)).await);
}

#[tokio::test]
async fn keys_are_hashed_listed_revoked_and_authenticated() {
    let fx = Fixture::new().await;
    let (tenant, admin) = fx.catalog.create_tenant("dpi").await.unwrap();
    let other = fx.tenant("acme").await;

    assert!(admin.secret.starts_with("sk_"));
    assert_eq!(admin.secret.len(), 3 + 64);
    assert!(admin.secret[3..]
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));

    let read = fx.catalog.create_key(tenant.id, Role::Read).await.unwrap();
    assert_ne!(read.secret, admin.secret);
    assert_ne!(read.info.id, admin.info.id);

    let listed = fx.catalog.list_keys(tenant.id).await.unwrap();
    let ids: Vec<_> = listed.iter().map(|k| k.id.clone()).collect();
    assert_eq!(listed.len(), 2);
    assert!(ids.contains(&admin.info.id) && ids.contains(&read.info.id));
    assert!(fx.catalog.list_keys(other).await.unwrap().len() == 1);

    let (who, info) = fx
        .catalog
        .authenticate(&read.secret)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(who, tenant);
    assert_eq!(info.id, read.info.id);
    assert_eq!(info.role, Role::Read);
    assert!(info.last_used_at.is_some());
    // Second call is served from the cache and still answers.
    assert!(fx
        .catalog
        .authenticate(&read.secret)
        .await
        .unwrap()
        .is_some());
    let listed = fx.catalog.list_keys(tenant.id).await.unwrap();
    let read_listed = listed.iter().find(|k| k.id == read.info.id).unwrap();
    assert!(read_listed.last_used_at.is_some(), "last use is recorded");

    assert!(fx.catalog.authenticate("sk_nope").await.unwrap().is_none());
    let unknown = format!("sk_{}", "0".repeat(64));
    assert!(fx.catalog.authenticate(&unknown).await.unwrap().is_none());

    // Another tenant cannot revoke it, and learns nothing about its existence.
    let message = assert_not_found(fx.catalog.revoke_key(other, &read.info.id).await);
    let unknown_message = assert_not_found(fx.catalog.revoke_key(other, "ffffffff").await);
    assert_eq!(
        message.replace(&read.info.id, "ID"),
        unknown_message.replace("ffffffff", "ID")
    );
    assert!(fx
        .catalog
        .authenticate(&read.secret)
        .await
        .unwrap()
        .is_some());

    // Revocation takes effect at once even though the key is cached.
    fx.catalog
        .revoke_key(tenant.id, &read.info.id)
        .await
        .unwrap();
    assert!(fx
        .catalog
        .authenticate(&read.secret)
        .await
        .unwrap()
        .is_none());
    assert_not_found(fx.catalog.revoke_key(tenant.id, &read.info.id).await);
    let ids: Vec<_> = fx
        .catalog
        .list_keys(tenant.id)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(ids, vec![admin.info.id.clone()]);

    // Only hashes are on disk: the secrets' text appears nowhere in the database files.
    let secrets = [admin.secret.clone(), read.secret.clone()];
    let fx = fx.reopen().await;
    assert!(fx
        .catalog
        .authenticate(&admin.secret)
        .await
        .unwrap()
        .is_some());
    assert!(fx
        .catalog
        .authenticate(&read.secret)
        .await
        .unwrap()
        .is_none());
    let Fixture { dir, catalog } = fx;
    drop(catalog);
    let mut on_disk = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        on_disk.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let on_disk = String::from_utf8_lossy(&on_disk);
    let hashes = stored_key_hashes(&Fixture::db_path(&dir)).await;
    assert_eq!(
        hashes.len(),
        3,
        "every key (two here, one of acme) has a row"
    );
    for hash in &hashes {
        assert_eq!(hash.len(), 64, "a SHA-256 hex digest is stored");
        assert!(!secrets.contains(hash));
    }
    for secret in &secrets {
        assert!(
            !on_disk.contains(secret.as_str()),
            "secret text found on disk"
        );
        assert!(!on_disk.contains(&secret[3..]), "secret hex found on disk");
    }
}

/// Reads the stored key hashes straight from the SQLite file, bypassing the catalog.
async fn stored_key_hashes(path: &std::path::Path) -> Vec<String> {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let hashes: Vec<String> = sqlx::query_scalar("SELECT secret_sha256 FROM api_keys")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    hashes
}

#[tokio::test]
async fn settings_default_and_patch() {
    let fx = Fixture::new().await;
    let t = fx.tenant("dpi").await;
    assert_eq!(
        fx.catalog.settings(t).await.unwrap(),
        TenantSettings {
            metric_keys: vec!["metrictype".into()],
            timestamp_patterns: vec![],
            cold_retention_days: None,
            mqtt_topics: vec![],
        }
    );
    let patched = fx
        .catalog
        .update_settings(
            t,
            SettingsPatch {
                metric_keys: Some(strings(&["metrictype", "source"])),
                timestamp_patterns: None,
                cold_retention_days: None,
                mqtt_topics: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(patched.metric_keys, strings(&["metrictype", "source"]));
    assert!(patched.timestamp_patterns.is_empty());
    let patched = fx
        .catalog
        .update_settings(
            t,
            SettingsPatch {
                metric_keys: None,
                timestamp_patterns: Some(strings(&["%d/%m/%Y %H:%M"])),
                cold_retention_days: None,
                mqtt_topics: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(patched.metric_keys, strings(&["metrictype", "source"]));
    assert_eq!(patched.timestamp_patterns, strings(&["%d/%m/%Y %H:%M"]));

    for bad in [
        SettingsPatch {
            metric_keys: Some(vec![]),
            timestamp_patterns: None,
            cold_retention_days: None,
            mqtt_topics: None,
        },
        SettingsPatch {
            metric_keys: Some(strings(&["a", "a"])),
            timestamp_patterns: None,
            cold_retention_days: None,
            mqtt_topics: None,
        },
        SettingsPatch {
            metric_keys: Some(strings(&[""])),
            timestamp_patterns: None,
            cold_retention_days: None,
            mqtt_topics: None,
        },
        SettingsPatch {
            metric_keys: None,
            timestamp_patterns: Some(strings(&["%Q"])),
            cold_retention_days: None,
            mqtt_topics: None,
        },
        SettingsPatch {
            cold_retention_days: Some(36_501),
            ..SettingsPatch::default()
        },
    ] {
        assert_invalid(fx.catalog.update_settings(t, bad).await);
    }
    // Rejected patches changed nothing.
    assert_eq!(fx.catalog.settings(t).await.unwrap(), patched);

    let history = fx.catalog.history(t).await.unwrap();
    assert_eq!(history.len(), 2, "each settings change is a version");
    assert!(
        history[0].change.contains("source"),
        "{}",
        history[0].change
    );
    assert!(history[1].change.contains("%d/%m/%Y %H:%M"));

    // Cold retention: a number of days, 0 (or never set) keeps cold data forever.
    let retention = |days| SettingsPatch {
        cold_retention_days: Some(days),
        ..SettingsPatch::default()
    };
    let patched = fx.catalog.update_settings(t, retention(30)).await.unwrap();
    assert_eq!(patched.cold_retention_days, Some(30));
    assert_eq!(patched.metric_keys, strings(&["metrictype", "source"]));
    let history = fx.catalog.history(t).await.unwrap();
    assert!(history[2].change.contains("cold retention to 30 days"));

    let fx = fx.reopen().await;
    assert_eq!(fx.catalog.settings(t).await.unwrap(), patched);
    let cleared = fx.catalog.update_settings(t, retention(0)).await.unwrap();
    assert_eq!(cleared.cold_retention_days, None);
    assert_not_found(fx.catalog.settings(TenantId(424242)).await);
}

#[tokio::test]
async fn metric_create_rename_alias_delete_and_reuse() {
    let fx = Fixture::new().await;
    let t = fx.tenant("dpi").await;
    fx.catalog
        .apply(t, create_metric("thermostat", &["machine1"]))
        .await
        .unwrap();
    let schema = fx.catalog.schema(t).await.unwrap();
    let m = schema.metric("machine1").unwrap().clone();
    assert_eq!(m.name, "thermostat");
    assert_eq!(m.aliases, strings(&["machine1"]));
    assert!(
        schema.metric("Thermostat").is_none(),
        "lookups are case-sensitive"
    );

    fx.catalog
        .apply(t, update_metric("machine1").rename("hvac").build())
        .await
        .unwrap();
    let schema = fx.catalog.schema(t).await.unwrap();
    let renamed = schema
        .metric("thermostat")
        .expect("old name still resolves");
    assert_eq!(renamed.id, m.id);
    assert_eq!(renamed.name, "hvac");
    // Aliases keep the order their names joined the metric; the old display name came first.
    assert_eq!(renamed.aliases, strings(&["thermostat", "machine1"]));

    fx.catalog
        .apply(
            t,
            update_metric("hvac")
                .add(&["machine1b"])
                .remove(&["machine1"])
                .build(),
        )
        .await
        .unwrap();
    let schema = fx.catalog.schema(t).await.unwrap();
    let metric = schema.metric("hvac").unwrap();
    assert_eq!(metric.aliases, strings(&["thermostat", "machine1b"]));
    assert!(schema.metric("machine1").is_none());

    let message = assert_invalid(
        fx.catalog
            .apply(t, update_metric("hvac").remove(&["hvac"]).build())
            .await,
    );
    assert!(message.contains("display name"), "{message}");
    assert_not_found(
        fx.catalog
            .apply(t, update_metric("hvac").remove(&["never"]).build())
            .await,
    );

    fx.catalog
        .apply(
            t,
            SchemaChange::DeleteMetric {
                metric: "thermostat".into(),
            },
        )
        .await
        .unwrap();
    let schema = fx.catalog.schema(t).await.unwrap();
    assert!(schema.metrics.is_empty());
    let message = assert_not_found(
        fx.catalog
            .apply(
                t,
                SchemaChange::DeleteMetric {
                    metric: "hvac".into(),
                },
            )
            .await,
    );
    assert_eq!(message, "metric \"hvac\" not found");
    assert_not_found(fx.catalog.apply(t, declare("hvac", "x", None, &[])).await);

    // Every name of the tombstone is free again; the new metric is empty with a new id.
    fx.catalog
        .apply(t, create_metric("hvac", &["machine1b"]))
        .await
        .unwrap();
    let schema = fx.catalog.schema(t).await.unwrap();
    let reborn = schema.metric("machine1b").unwrap();
    assert_ne!(reborn.id, m.id);
    assert!(reborn.fields.is_empty());

    // Other tenants' names are independent.
    let other = fx.tenant("acme").await;
    fx.catalog
        .apply(other, create_metric("hvac", &[]))
        .await
        .unwrap();
    assert_not_found(
        fx.catalog
            .apply(other, update_metric("machine1b").build())
            .await,
    );
}

#[tokio::test]
async fn field_declare_rename_and_alias_precedence() {
    let fx = Fixture::new().await;
    let t = fx.tenant("dpi").await;
    fx.catalog
        .apply(t, create_metric("thermostat", &[]))
        .await
        .unwrap();
    fx.catalog
        .apply(
            t,
            declare(
                "thermostat",
                "temperature",
                Some(FieldType::Double),
                &["temp"],
            ),
        )
        .await
        .unwrap();
    // PUT again under an alias: sets type, appends only new aliases.
    fx.catalog
        .apply(
            t,
            SchemaChange::DeclareField {
                metric: "thermostat".into(),
                field: "temp".into(),
                field_type: Some(FieldType::Integer),
                aliases: strings(&["temp", "tmp"]),
                hidden: true,
                expression: None,
                conversions: Default::default(),
            },
        )
        .await
        .unwrap();
    let schema = fx.catalog.schema(t).await.unwrap();
    let f = schema.metric("thermostat").unwrap().field("tmp").unwrap();
    assert_eq!(f.name, "temperature");
    assert_eq!(f.field_type, Some(FieldType::Integer));
    assert!(f.hidden);
    assert_eq!(f.names, strings(&["temperature", "temp", "tmp"]));

    // Rename to a new name: it joins at the end; precedence of old names is unchanged.
    fx.catalog
        .apply(
            t,
            with_field_update(update_field("thermostat", "temp"), |e| {
                *e.rename_to = Some("temp_c".into());
                *e.hidden = Some(false);
            }),
        )
        .await
        .unwrap();
    // Rename to an existing alias: only the display name moves.
    fx.catalog
        .apply(
            t,
            with_field_update(update_field("thermostat", "temp_c"), |e| {
                *e.rename_to = Some("tmp".into());
                *e.field_type = Some(FieldType::Double);
                *e.add_aliases = strings(&["t"]);
            }),
        )
        .await
        .unwrap();
    let schema = fx.catalog.schema(t).await.unwrap();
    let metric = schema.metric("thermostat").unwrap();
    let f = metric.field("temperature").unwrap();
    assert_eq!(f.name, "tmp");
    assert_eq!(
        f.names,
        strings(&["temperature", "temp", "tmp", "temp_c", "t"])
    );
    assert_eq!(f.aliases(), vec!["temperature", "temp", "temp_c", "t"]);
    assert_eq!(f.field_type, Some(FieldType::Double));
    assert!(!f.hidden);

    // Remove aliases; removing the display name is refused.
    fx.catalog
        .apply(
            t,
            with_field_update(update_field("thermostat", "tmp"), |e| {
                *e.remove_aliases = strings(&["temp", "temp_c"]);
            }),
        )
        .await
        .unwrap();
    let message = assert_invalid(
        fx.catalog
            .apply(
                t,
                with_field_update(update_field("thermostat", "t"), |e| {
                    *e.remove_aliases = strings(&["tmp"]);
                }),
            )
            .await,
    );
    assert!(message.contains("display name"), "{message}");
    assert_not_found(
        fx.catalog
            .apply(
                t,
                with_field_update(update_field("thermostat", "t"), |e| {
                    *e.remove_aliases = strings(&["zzz"]);
                }),
            )
            .await,
    );
    let message = assert_not_found(
        fx.catalog
            .apply(t, update_field("thermostat", "nope"))
            .await,
    );
    assert!(message.contains("\"nope\""), "{message}");

    let schema = fx.catalog.schema(t).await.unwrap();
    let metric = schema.metric("thermostat").unwrap();
    assert!(metric.field("temp").is_none());
    assert_eq!(
        metric.field("t").unwrap().names,
        strings(&["temperature", "tmp", "t"])
    );

    // Declaring with no type keeps the field unknown.
    fx.catalog
        .apply(t, declare("thermostat", "humidity", None, &[]))
        .await
        .unwrap();
    let schema = fx.catalog.schema(t).await.unwrap();
    let humidity = schema
        .metric("thermostat")
        .unwrap()
        .field("humidity")
        .unwrap();
    assert_eq!(humidity.field_type, None);
    assert!(humidity.aliases().is_empty());
}

#[tokio::test]
async fn series_keys_auto_declare_and_survive_renames() {
    let fx = Fixture::new().await;
    let t = fx.tenant("dpi").await;
    fx.catalog
        .apply(t, create_metric("truck", &[]))
        .await
        .unwrap();
    fx.catalog
        .apply(
            t,
            declare("truck", "truck_id", Some(FieldType::String), &["tid"]),
        )
        .await
        .unwrap();
    fx.catalog
        .apply(
            t,
            update_metric("truck")
                .series_keys(&["fleet", "tid"])
                .build(),
        )
        .await
        .unwrap();
    fx.catalog
        .apply(
            t,
            with_field_update(update_field("truck", "fleet"), |e| {
                *e.rename_to = Some("fleet_name".into());
            }),
        )
        .await
        .unwrap();
    let schema = fx.catalog.schema(t).await.unwrap();
    let metric = schema.metric("truck").unwrap();
    let keys: Vec<_> = metric
        .series_key_fields()
        .into_iter()
        .map(|f| (f.name.clone(), f.field_type))
        .collect();
    assert_eq!(
        keys,
        vec![
            ("fleet_name".to_string(), None),
            ("truck_id".to_string(), Some(FieldType::String))
        ]
    );
    assert_invalid(
        fx.catalog
            .apply(
                t,
                update_metric("truck")
                    .series_keys(&["tid", "truck_id"])
                    .build(),
            )
            .await,
    );
    assert_invalid(
        fx.catalog
            .apply(
                t,
                update_metric("truck").series_keys(&["timestamp"]).build(),
            )
            .await,
    );
    // Clearing the series keys is allowed.
    fx.catalog
        .apply(t, update_metric("truck").series_keys(&[]).build())
        .await
        .unwrap();
    let schema = fx.catalog.schema(t).await.unwrap();
    assert!(schema.metric("truck").unwrap().series_keys.is_empty());
}

#[tokio::test]
async fn name_conflicts_are_refused_and_named() {
    let fx = Fixture::new().await;
    let t = fx.tenant("dpi").await;
    fx.catalog
        .apply(t, create_metric("thermostat", &["machine1"]))
        .await
        .unwrap();
    fx.catalog
        .apply(t, create_metric("pump", &[]))
        .await
        .unwrap();
    fx.catalog
        .apply(
            t,
            declare(
                "thermostat",
                "temperature",
                Some(FieldType::Double),
                &["temp"],
            ),
        )
        .await
        .unwrap();
    fx.catalog
        .apply(t, declare("thermostat", "pressure", None, &[]))
        .await
        .unwrap();
    let before = fx.catalog.history(t).await.unwrap().len();

    // Field alias owned by another field.
    let result = fx
        .catalog
        .apply(
            t,
            with_field_update(update_field("thermostat", "pressure"), |e| {
                *e.add_aliases = strings(&["temp"]);
            }),
        )
        .await;
    assert_conflict_naming(result, &["\"temp\"", "\"temperature\"", "\"thermostat\""]);
    let result = fx
        .catalog
        .apply(t, declare("thermostat", "pressure", None, &["temp"]))
        .await;
    assert_conflict_naming(result, &["\"temp\"", "\"temperature\""]);
    let result = fx
        .catalog
        .apply(
            t,
            with_field_update(update_field("thermostat", "pressure"), |e| {
                *e.rename_to = Some("temperature".into());
            }),
        )
        .await;
    assert_conflict_naming(result, &["\"temperature\""]);

    // Metric names and aliases across metrics.
    assert_conflict_naming(
        fx.catalog.apply(t, create_metric("machine1", &[])).await,
        &["\"machine1\"", "\"thermostat\""],
    );
    assert_conflict_naming(
        fx.catalog
            .apply(t, create_metric("boiler", &["pump"]))
            .await,
        &["\"pump\""],
    );
    assert_conflict_naming(
        fx.catalog
            .apply(t, update_metric("pump").add(&["machine1"]).build())
            .await,
        &["\"machine1\"", "\"thermostat\""],
    );
    assert_conflict_naming(
        fx.catalog
            .apply(t, update_metric("pump").rename("thermostat").build())
            .await,
        &["\"thermostat\""],
    );

    // Timestamp aliases and field names share one namespace per metric.
    assert_conflict_naming(
        fx.catalog
            .apply(
                t,
                update_metric("thermostat")
                    .timestamp_aliases(&["ts", "temp"])
                    .build(),
            )
            .await,
        &["\"temp\"", "\"temperature\""],
    );
    fx.catalog
        .apply(
            t,
            update_metric("thermostat")
                .timestamp_aliases(&["ts"])
                .build(),
        )
        .await
        .unwrap();
    assert_conflict_naming(
        fx.catalog
            .apply(t, declare("thermostat", "ts", None, &[]))
            .await,
        &["\"ts\"", "timestamp alias", "\"thermostat\""],
    );
    assert_conflict_naming(
        fx.catalog
            .apply(t, declare("thermostat", "other", None, &["ts"]))
            .await,
        &["\"ts\""],
    );
    // The same name is fine in another metric.
    fx.catalog
        .apply(t, declare("pump", "ts", None, &["temp"]))
        .await
        .unwrap();

    // Failed changes left no trace: exactly two successful versions were added.
    let history = fx.catalog.history(t).await.unwrap();
    assert_eq!(history.len(), before + 2);
    let schema = fx.catalog.schema(t).await.unwrap();
    let thermostat = schema.metric("thermostat").unwrap();
    assert_eq!(
        thermostat.field("pressure").unwrap().names,
        strings(&["pressure"])
    );
    assert!(thermostat.field("other").is_none());
    assert_eq!(thermostat.timestamp_aliases, strings(&["ts"]));
}

#[tokio::test]
async fn reserved_and_invalid_names_are_refused() {
    let fx = Fixture::new().await;
    let t = fx.tenant("dpi").await;
    fx.catalog
        .apply(t, create_metric("thermostat", &[]))
        .await
        .unwrap();
    let message = assert_invalid(
        fx.catalog
            .apply(t, declare("thermostat", "timestamp", None, &[]))
            .await,
    );
    assert!(message.contains("reserved"), "{message}");
    assert_invalid(
        fx.catalog
            .apply(t, declare("thermostat", "x", None, &["timestamp"]))
            .await,
    );
    fx.catalog
        .apply(t, declare("thermostat", "x", None, &[]))
        .await
        .unwrap();
    assert_invalid(
        fx.catalog
            .apply(
                t,
                with_field_update(update_field("thermostat", "x"), |e| {
                    *e.rename_to = Some("timestamp".into());
                }),
            )
            .await,
    );
    assert_invalid(
        fx.catalog
            .apply(
                t,
                update_metric("thermostat")
                    .timestamp_aliases(&["timestamp"])
                    .build(),
            )
            .await,
    );
    assert_invalid(fx.catalog.apply(t, create_metric("", &[])).await);
    assert_invalid(
        fx.catalog
            .apply(t, create_metric("ok", &["bad\u{0}"]))
            .await,
    );
    assert_invalid(
        fx.catalog
            .apply(t, create_metric(&"m".repeat(256), &[]))
            .await,
    );
    assert_invalid(
        fx.catalog
            .apply(t, declare("thermostat", "", None, &[]))
            .await,
    );
    assert_invalid(
        fx.catalog
            .apply(t, update_metric("thermostat").rename("a\tb").build())
            .await,
    );
    let mut patterns = update_metric("thermostat");
    patterns.timestamp_patterns = Some(strings(&["%d/%m/%Y", "%Q"]));
    assert_invalid(fx.catalog.apply(t, patterns.build()).await);
    let mut patterns = update_metric("thermostat");
    patterns.timestamp_patterns = Some(strings(&["%d/%m/%Y %H:%M"]));
    fx.catalog.apply(t, patterns.build()).await.unwrap();
    let schema = fx.catalog.schema(t).await.unwrap();
    let metric = schema.metric("thermostat").unwrap();
    assert_eq!(metric.timestamp_patterns, strings(&["%d/%m/%Y %H:%M"]));
    assert_eq!(metric.fields.len(), 1);
    assert_not_found(
        fx.catalog
            .apply(TenantId(4242), create_metric("x", &[]))
            .await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_of_one_alias_let_exactly_one_win() {
    let fx = Fixture::new().await;
    let t = fx.tenant("dpi").await;
    fx.catalog
        .apply(t, create_metric("thermostat", &[]))
        .await
        .unwrap();
    const CONTENDERS: usize = 6;
    for i in 0..CONTENDERS {
        fx.catalog
            .apply(t, declare("thermostat", &format!("f{i}"), None, &[]))
            .await
            .unwrap();
    }
    // A second catalog on the same file stands in for another process: it shares no in-process
    // lock with the first, so only SQLite transactions and UNIQUE indexes keep the rule.
    let second: DynCatalog = Arc::new(
        SqliteCatalog::open(&Fixture::db_path(&fx.dir))
            .await
            .unwrap(),
    );
    let catalog: DynCatalog = Arc::new(fx.catalog);
    let barrier = Arc::new(tokio::sync::Barrier::new(CONTENDERS));
    let mut tasks = Vec::new();
    for i in 0..CONTENDERS {
        let catalog = if i % 2 == 0 {
            catalog.clone()
        } else {
            second.clone()
        };
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            catalog
                .apply(
                    t,
                    with_field_update(update_field("thermostat", &format!("f{i}")), |e| {
                        *e.add_aliases = strings(&["shared"]);
                    }),
                )
                .await
        }));
    }
    let mut wins = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => wins += 1,
            Err(CatalogError::Conflict(message)) => assert!(message.contains("\"shared\"")),
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!(wins, 1);
    let schema = second.schema(t).await.unwrap();
    let owners = schema
        .metric("thermostat")
        .unwrap()
        .fields
        .iter()
        .filter(|f| f.names.iter().any(|n| n == "shared"))
        .count();
    assert_eq!(owners, 1);

    // Concurrent metric creation on first write: one metric, one history entry.
    let mut tasks = Vec::new();
    for i in 0..CONTENDERS {
        let catalog = if i % 2 == 0 {
            catalog.clone()
        } else {
            second.clone()
        };
        tasks.push(tokio::spawn(async move {
            catalog.ensure_metric(t, "new machine").await.unwrap().id
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "every caller got the same metric");
    let created = catalog
        .history(t)
        .await
        .unwrap()
        .into_iter()
        .filter(|v| v.change == "created metric \"new machine\" on first write")
        .count();
    assert_eq!(created, 1);
}

#[tokio::test]
async fn history_is_dense_ordered_and_readable() {
    let fx = Fixture::new().await;
    let t = fx.tenant("dpi").await;
    let other = fx.tenant("acme").await;
    assert!(fx.catalog.history(t).await.unwrap().is_empty());
    assert_eq!(fx.catalog.schema(t).await.unwrap().version, 0);

    let v1 = fx
        .catalog
        .apply(t, create_metric("thermostat", &["machine1"]))
        .await
        .unwrap();
    fx.catalog
        .apply(other, create_metric("elsewhere", &[]))
        .await
        .unwrap();
    fx.catalog
        .apply(
            t,
            declare("thermostat", "temperature", Some(FieldType::Double), &[]),
        )
        .await
        .unwrap();
    let _ = fx.catalog.apply(t, create_metric("machine1", &[])).await; // conflict: no version
    fx.catalog
        .apply(
            t,
            with_field_update(update_field("thermostat", "temperature"), |e| {
                *e.rename_to = Some("temp_c".into());
            }),
        )
        .await
        .unwrap();
    fx.catalog.ensure_metric(t, "pump").await.unwrap();
    let last = fx
        .catalog
        .apply(
            t,
            SchemaChange::DeleteMetric {
                metric: "pump".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(v1.version, 1);
    assert_eq!(last.version, 5);

    let history = fx.catalog.history(t).await.unwrap();
    let versions: Vec<i64> = history.iter().map(|v| v.version).collect();
    assert_eq!(versions, vec![1, 2, 3, 4, 5]);
    assert!(history.windows(2).all(|w| w[0].at <= w[1].at));
    assert_eq!(
        history[0].change,
        "created metric \"thermostat\" with aliases \"machine1\""
    );
    assert_eq!(
        history[2].change,
        "renamed field \"temperature\" of metric \"thermostat\" to \"temp_c\""
    );
    assert_eq!(history[3].change, "created metric \"pump\" on first write");
    assert_eq!(history[4].change, "deleted metric \"pump\"");
    assert_eq!(fx.catalog.schema(t).await.unwrap().version, 5);
    assert_eq!(fx.catalog.history(other).await.unwrap().len(), 1);
    assert_eq!(history[4], last);
}

#[tokio::test]
async fn everything_persists_across_reopen() {
    let fx = Fixture::new().await;
    let (tenant, admin) = fx.catalog.create_tenant("dpi").await.unwrap();
    let t = tenant.id;
    fx.catalog
        .apply(t, create_metric("thermostat", &["machine1"]))
        .await
        .unwrap();
    fx.catalog
        .apply(
            t,
            declare(
                "thermostat",
                "temperature",
                Some(FieldType::Double),
                &["temp"],
            ),
        )
        .await
        .unwrap();
    fx.catalog
        .apply(
            t,
            update_metric("thermostat")
                .rename("hvac")
                .timestamp_aliases(&["ts"])
                .series_keys(&["name"])
                .build(),
        )
        .await
        .unwrap();
    fx.catalog
        .apply(t, create_metric("gone", &[]))
        .await
        .unwrap();
    fx.catalog
        .apply(
            t,
            SchemaChange::DeleteMetric {
                metric: "gone".into(),
            },
        )
        .await
        .unwrap();
    let metric = fx
        .catalog
        .schema(t)
        .await
        .unwrap()
        .metric("hvac")
        .unwrap()
        .id;
    let ids = fx
        .catalog
        .register_incoming_names(t, metric, &strings(&["temp", "gallons"]))
        .await
        .unwrap();
    let before = fx.catalog.schema(t).await.unwrap();
    let history_before = fx.catalog.history(t).await.unwrap();

    let fx = fx.reopen().await;
    let after = fx.catalog.schema(t).await.unwrap();
    assert_eq!(after.version, before.version);
    assert_eq!(
        serde_json::to_value(&*after).unwrap(),
        serde_json::to_value(&*before).unwrap()
    );
    let m = after.metric("thermostat").unwrap();
    assert_eq!(m.name, "hvac");
    assert_eq!(m.timestamp_aliases, strings(&["ts"]));
    assert_eq!(m.series_key_fields()[0].name, "name");
    assert!(after.metric("gone").is_none());
    assert_eq!(fx.catalog.history(t).await.unwrap(), history_before);
    assert!(fx
        .catalog
        .authenticate(&admin.secret)
        .await
        .unwrap()
        .is_some());
    // Ids stay stable and dense after reopen.
    let again = fx
        .catalog
        .register_incoming_names(t, metric, &strings(&["gallons", "new", "temp"]))
        .await
        .unwrap();
    assert_eq!(again, vec![ids[1], 3, ids[0]]);
}

#[tokio::test]
async fn timestamp_unit_is_stored_versioned_and_persists() {
    let fx = Fixture::new().await;
    let t = fx.tenant("dpi").await;
    fx.catalog
        .apply(t, create_metric("MY_TABLE", &["m1"]))
        .await
        .unwrap();
    let unit_of =
        |schema: &strata_catalog::TenantSchema| schema.metric("m1").unwrap().timestamp_unit;
    assert_eq!(
        unit_of(&fx.catalog.schema(t).await.unwrap()),
        TimestampUnit::Millis
    );
    // The default is left out of the serialized metric (rollup fingerprints hash it).
    let shown = serde_json::to_value(&*fx.catalog.schema(t).await.unwrap()).unwrap();
    assert!(
        shown["metrics"][0].get("timestamp_unit").is_none(),
        "{shown}"
    );

    let version = fx
        .catalog
        .apply(
            t,
            update_metric("m1")
                .timestamp_unit(TimestampUnit::Seconds)
                .build(),
        )
        .await
        .unwrap();
    assert!(
        version
            .change
            .contains("\"MY_TABLE\" reads numeric timestamps as epoch seconds"),
        "{}",
        version.change
    );
    assert_eq!(
        unit_of(&fx.catalog.schema(t).await.unwrap()),
        TimestampUnit::Seconds
    );
    fx.catalog
        .apply(
            t,
            update_metric("m1")
                .timestamp_unit(TimestampUnit::Auto)
                .build(),
        )
        .await
        .unwrap();
    let history = fx.catalog.history(t).await.unwrap();
    assert_eq!(history.len(), 3);
    assert!(
        history[2].change.contains("timestamp_unit auto"),
        "{history:?}"
    );

    let fx = fx.reopen().await;
    let schema = fx.catalog.schema(t).await.unwrap();
    assert_eq!(unit_of(&schema), TimestampUnit::Auto);
    let shown = serde_json::to_value(&*schema).unwrap();
    assert_eq!(shown["metrics"][0]["timestamp_unit"], "auto");
}

/// Migration versions are reserved ahead (0007 for other work while 0008 landed), so a catalog
/// may record a higher version than one it still lacks: the runner applies every known version
/// not recorded, not just those above the highest.
#[tokio::test]
async fn a_missing_migration_below_the_highest_is_still_applied() {
    use sqlx::Connection;
    let fx = Fixture::new().await;
    let t = fx.tenant("dpi").await;
    fx.catalog.apply(t, create_metric("m", &[])).await.unwrap();
    let Fixture { dir, catalog } = fx;
    drop(catalog);
    let url = format!("sqlite://{}", Fixture::db_path(&dir).display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    // As if version 6 had been reserved and released after 8 was applied.
    sqlx::raw_sql(
        "ALTER TABLE metrics DROP COLUMN retention_days; \
         DELETE FROM catalog_migrations WHERE version = 6;",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    let catalog = SqliteCatalog::open(&Fixture::db_path(&dir)).await.unwrap();
    let fx = Fixture { dir, catalog };
    fx.catalog
        .apply(t, update_metric("m").retention_days(7).build())
        .await
        .unwrap();
    let schema = fx.catalog.schema(t).await.unwrap();
    assert_eq!(schema.metric("m").unwrap().retention_days, Some(7));
    assert_eq!(
        schema.metric("m").unwrap().timestamp_unit,
        TimestampUnit::Millis
    );
}

#[tokio::test]
async fn incoming_names_are_idempotent_and_stats_merge() {
    let fx = Fixture::new().await;
    let t = fx.tenant("dpi").await;
    let other = fx.tenant("acme").await;
    let metric = fx.catalog.ensure_metric(t, "new machine").await.unwrap();
    assert!(metric.incoming.is_empty());

    let ids = fx
        .catalog
        .register_incoming_names(t, metric.id, &strings(&["gallons", "temp", "gallons"]))
        .await
        .unwrap();
    assert_eq!(ids, vec![1, 2, 1]);
    let ids = fx
        .catalog
        .register_incoming_names(t, metric.id, &strings(&["temp", "gps.lat", "gallons"]))
        .await
        .unwrap();
    assert_eq!(ids, vec![2, 3, 1]);
    assert!(fx
        .catalog
        .register_incoming_names(t, metric.id, &[])
        .await
        .unwrap()
        .is_empty());
    // Another tenant cannot register under (or learn about) this metric.
    assert_not_found(
        fx.catalog
            .register_incoming_names(other, metric.id, &strings(&["gallons"]))
            .await,
    );
    assert_not_found(
        fx.catalog
            .register_incoming_names(other, metric.id, &strings(&["x"]))
            .await,
    );
    assert_invalid(
        fx.catalog
            .register_incoming_names(t, metric.id, &strings(&["bad\nname"]))
            .await,
    );

    let delta =
        |name, count, first, last, kinds: &[JsonKind], samples: &[&str]| IncomingStatsDelta {
            metric: metric.id,
            name,
            count,
            first_seen_ms: first,
            last_seen_ms: last,
            kinds: kinds.iter().fold(0, |acc, k| acc | k.bit()),
            samples: strings(samples),
        };
    fx.catalog
        .record_incoming_stats(
            t,
            vec![
                delta(1, 3, 2_000, 5_000, &[JsonKind::Number], &["1", "2", "1"]),
                delta(2, 1, 1_000, 1_000, &[JsonKind::String], &["hot"]),
            ],
        )
        .await
        .unwrap();
    let long = "x".repeat(1000);
    fx.catalog
        .record_incoming_stats(
            t,
            vec![
                delta(
                    1,
                    4,
                    1_500,
                    4_000,
                    &[JsonKind::String],
                    &["2", "3", "4", "5", "6", "7"],
                ),
                delta(2, 2, 3_000, 9_000, &[JsonKind::Null], &[long.as_str()]),
            ],
        )
        .await
        .unwrap();

    let schema = fx.catalog.schema(t).await.unwrap();
    let m = schema.metric("new machine").unwrap();
    let gallons = m.incoming("gallons").unwrap();
    assert_eq!(gallons.id, 1);
    assert_eq!(gallons.count, 7);
    assert_eq!(gallons.first_seen.unwrap().timestamp_millis(), 1_500);
    assert_eq!(gallons.last_seen.unwrap().timestamp_millis(), 5_000);
    assert_eq!(gallons.kinds, vec![JsonKind::Number, JsonKind::String]);
    assert_eq!(gallons.samples, strings(&["1", "2", "3", "4", "5"]));
    let temp = m.incoming("temp").unwrap();
    assert_eq!(temp.count, 3);
    assert_eq!(temp.first_seen.unwrap().timestamp_millis(), 1_000);
    assert_eq!(temp.last_seen.unwrap().timestamp_millis(), 9_000);
    assert_eq!(temp.kinds, vec![JsonKind::Null, JsonKind::String]);
    assert_eq!(temp.samples.len(), 2);
    assert!(temp.samples[1].len() <= strata_catalog::MAX_SAMPLE_BYTES);
    let never = m.incoming("gps.lat").unwrap();
    assert_eq!((never.count, never.first_seen), (0, None));

    // Unknown fields are the incoming names no field claims.
    fx.catalog
        .apply(t, declare("new machine", "temperature", None, &["temp"]))
        .await
        .unwrap();
    let schema = fx.catalog.schema(t).await.unwrap();
    let unknown: Vec<_> = schema
        .metric("new machine")
        .unwrap()
        .unknown_incoming()
        .map(|i| i.name.as_str())
        .collect();
    assert_eq!(unknown, vec!["gallons", "gps.lat"]);

    assert_not_found(
        fx.catalog
            .record_incoming_stats(t, vec![delta(99, 1, 0, 0, &[], &[])])
            .await,
    );
    assert_not_found(
        fx.catalog
            .record_incoming_stats(other, vec![delta(1, 1, 0, 0, &[], &[])])
            .await,
    );
    // The rejected batches changed nothing.
    let schema = fx.catalog.schema(t).await.unwrap();
    assert_eq!(
        schema
            .metric("new machine")
            .unwrap()
            .incoming("gallons")
            .unwrap()
            .count,
        7
    );
}

#[tokio::test]
async fn schema_cache_sees_every_change_at_once() {
    let fx = Fixture::new().await;
    let t = fx.tenant("dpi").await;
    let empty = fx.catalog.schema(t).await.unwrap();
    assert!(empty.metrics.is_empty());
    // Served from cache while nothing changes.
    assert!(Arc::ptr_eq(&empty, &fx.catalog.schema(t).await.unwrap()));

    fx.catalog
        .apply(t, create_metric("thermostat", &[]))
        .await
        .unwrap();
    let s1 = fx.catalog.schema(t).await.unwrap();
    assert_eq!(s1.metrics.len(), 1);
    assert_eq!(s1.version, 1);

    fx.catalog
        .apply(t, declare("thermostat", "temperature", None, &[]))
        .await
        .unwrap();
    let s2 = fx.catalog.schema(t).await.unwrap();
    assert!(s2
        .metric("thermostat")
        .unwrap()
        .field("temperature")
        .is_some());

    let metric = fx.catalog.ensure_metric(t, "pump").await.unwrap();
    let s3 = fx.catalog.schema(t).await.unwrap();
    assert_eq!(s3.metric("pump").unwrap().id, metric.id);
    // ensure_metric on an existing name or alias returns the same metric without a new version.
    fx.catalog
        .apply(t, update_metric("pump").add(&["p1"]).build())
        .await
        .unwrap();
    assert_eq!(
        fx.catalog.ensure_metric(t, "p1").await.unwrap().id,
        metric.id
    );
    let version = fx.catalog.schema(t).await.unwrap().version;
    fx.catalog.ensure_metric(t, "pump").await.unwrap();
    assert_eq!(fx.catalog.schema(t).await.unwrap().version, version);

    fx.catalog
        .register_incoming_names(t, metric.id, &strings(&["flow"]))
        .await
        .unwrap();
    let s4 = fx.catalog.schema(t).await.unwrap();
    assert!(s4.metric("pump").unwrap().incoming("flow").is_some());

    fx.catalog
        .update_settings(
            t,
            SettingsPatch {
                metric_keys: Some(strings(&["source"])),
                timestamp_patterns: None,
                cold_retention_days: None,
                mqtt_topics: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(fx.catalog.schema(t).await.unwrap().version, version + 1);

    fx.catalog
        .apply(
            t,
            SchemaChange::DeleteMetric {
                metric: "p1".into(),
            },
        )
        .await
        .unwrap();
    assert!(fx.catalog.schema(t).await.unwrap().metric("pump").is_none());
    assert_invalid(fx.catalog.ensure_metric(t, "").await);
    assert_not_found(fx.catalog.schema(TenantId(777)).await);
}

/// Each consumer can hold only the role it uses: a `DynCatalog` narrows by trait upcasting, and
/// every narrow handle sees the same catalog.
#[tokio::test]
async fn a_catalog_narrows_to_each_role() {
    let fx = Fixture::new().await;
    let catalog: DynCatalog = Arc::new(fx.catalog);
    let directory: Arc<dyn TenantDirectory> = catalog.clone();
    let settings: Arc<dyn SettingsStore> = catalog.clone();
    let registry: Arc<dyn SchemaRegistry> = catalog.clone();
    let names: Arc<dyn IncomingNames> = catalog.clone();
    let cold: Arc<dyn ColdManifestStore> = catalog.clone();

    let (tenant, _) = directory.create_tenant("dpi").await.unwrap();
    assert_eq!(
        settings.settings(tenant.id).await.unwrap(),
        TenantSettings::default()
    );
    let metric = registry.ensure_metric(tenant.id, "pump").await.unwrap();
    let ids = names
        .register_incoming_names(tenant.id, metric.id, &strings(&["flow"]))
        .await
        .unwrap();
    assert_eq!(ids, vec![1]);
    let manifest = cold.cold_manifest(tenant.id, metric.id).await.unwrap();
    assert!(manifest.files.is_empty() && manifest.watermark.is_none());
    let schema = catalog.schema(tenant.id).await.unwrap();
    assert_eq!(schema.metric("pump").unwrap().incoming.len(), 1);
}
