//! Which metric an MQTT topic names for the bridge, by the listener's default rule: a topic of
//! one level is the metric (`thermostat`), a topic of two levels is the metric and the device
//! (`thermostat/truck_7`). Any other topic names no metric, and its events name their own
//! (the tenant's metric keys, `metrictype` by default), as on `/api/v1/write`.

/// The metric `topic` names, if any.
pub fn topic_metric(topic: &str) -> Option<String> {
    let mut levels = topic.split('/');
    let metric = levels.next()?;
    let rest: Vec<&str> = levels.collect();
    let shaped = matches!(rest.as_slice(), [] | [_]);
    let usable = shaped
        && !metric.is_empty()
        && !metric.starts_with('$')
        && rest.iter().all(|level| !level.is_empty());
    usable.then(|| metric.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_or_two_levels_name_the_metric() {
        assert_eq!(topic_metric("thermostat").as_deref(), Some("thermostat"));
        assert_eq!(
            topic_metric("thermostat/truck_7").as_deref(),
            Some("thermostat")
        );
        assert_eq!(topic_metric("plant/a/thermostat"), None);
        assert_eq!(topic_metric("thermostat/"), None);
        assert_eq!(topic_metric("/x"), None);
        assert_eq!(topic_metric("$SYS/x"), None);
    }
}
