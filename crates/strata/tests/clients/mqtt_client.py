"""Drives Strata's MQTT listener (tests/it/mqtt.rs) and checks a broker's sessions
(tests/it/sources_mqtt.rs) with paho-mqtt (issue 19).

Usage: mqtt_client.py MODE HOST PORT USER PASSWORD [ARGS...]; every mode prints JSON lines.

  publish V TOPIC PAYLOAD    one QoS 1 publish with MQTT V (3 = 3.1.1, 5 = 5); prints the
                             CONNACK reason and the PUBACK reason code (MQTT 5) or "acked"
  subscribe V FILTER         prints the SUBACK reason codes
  session CLIENT_ID          connects (3.1.1) with that client id and without a clean session, as
                             a bridge resuming its session would; prints whether the broker had a
                             session for it and how many publishes it delivered within 2 s
  flood TOPIC COUNT          QoS 1 publishes of events 0..COUNT-1 (3.1.1, 20 in flight); prints
                             {"acked": i} as each PUBACK arrives, and stops at a disconnect
"""

import json
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def say(**fields):
    print(json.dumps(fields), flush=True)


def client(version, user, password):
    protocol = mqtt.MQTTv5 if version == "5" else mqtt.MQTTv311
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=protocol)
    c.username_pw_set(user, password)
    return c


def connect(c, host, port):
    """Connects and returns the CONNACK reason as text ("Success" when accepted)."""
    answered = threading.Event()
    outcome = {}

    def on_connect(_c, _userdata, _flags, reason_code, _properties):
        outcome["reason"] = str(reason_code)
        outcome["failure"] = reason_code.is_failure
        answered.set()

    c.on_connect = on_connect
    c.connect(host, int(port), keepalive=30)
    c.loop_start()
    if not answered.wait(10):
        raise SystemExit("no CONNACK within 10 s")
    return outcome


def publish(host, port, user, password, version, topic, payload):
    c = client(version, user, password)
    acks = []
    done = threading.Event()

    def on_publish(_c, _userdata, mid, reason_code, _properties):
        acks.append(reason_code.value if hasattr(reason_code, "value") else 0)
        done.set()

    c.on_publish = on_publish
    connected = connect(c, host, port)
    if connected["failure"]:
        say(connack=connected["reason"])
        return
    c.publish(topic, payload, qos=1)
    acked = done.wait(10)
    say(connack=connected["reason"], acked=acked, reason=acks[0] if acks else None,
        connected=c.is_connected())
    c.disconnect()
    c.loop_stop()


def subscribe(host, port, user, password, version, topic_filter):
    c = client(version, user, password)
    granted = []
    done = threading.Event()

    def on_subscribe(_c, _userdata, _mid, reason_codes, _properties):
        granted.extend(code.value for code in reason_codes)
        done.set()

    c.on_subscribe = on_subscribe
    connect(c, host, port)
    c.subscribe(topic_filter, qos=1)
    done.wait(10)
    say(granted=granted)
    c.disconnect()
    c.loop_stop()


def flood(host, port, user, password, topic, count):
    c = client("3", user, password)
    c.max_inflight_messages_set(20)
    lost = threading.Event()
    c.on_disconnect = lambda *_args: lost.set()
    index_of_mid = {}

    def on_publish(_c, _userdata, mid, _reason_code, _properties):
        say(acked=index_of_mid.get(mid))

    c.on_publish = on_publish
    connect(c, host, port)
    for i in range(int(count)):
        if lost.is_set():
            break
        event = {"timestamp": 1_700_000_000_000 + i, "name": "truck_1", "temp": i}
        info = c.publish(topic, json.dumps(event), qos=1)
        index_of_mid[info.mid] = i
        # Paces the flood so a kill lands between publishes, not after the last one.
        time.sleep(0.001)
    lost.wait(5)
    c.loop_stop()


def session(host, port, user, password, client_id):
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
                    protocol=mqtt.MQTTv311)
    c.username_pw_set(user, password)
    answered = threading.Event()
    outcome = {"messages": 0}

    def on_connect(_c, _userdata, flags, _reason_code, _properties):
        outcome["session_present"] = flags.session_present
        answered.set()

    def on_message(_c, _userdata, _message):
        outcome["messages"] += 1

    c.on_connect = on_connect
    c.on_message = on_message
    c.connect(host, int(port), keepalive=30)
    c.loop_start()
    if not answered.wait(10):
        raise SystemExit("no CONNACK within 10 s")
    time.sleep(2)
    say(**outcome)
    c.disconnect()
    c.loop_stop()


def main():
    mode, host, port, user, password, *rest = sys.argv[1:]
    if mode == "publish":
        publish(host, port, user, password, *rest)
    elif mode == "subscribe":
        subscribe(host, port, user, password, *rest)
    elif mode == "flood":
        flood(host, port, user, password, *rest)
    elif mode == "session":
        session(host, port, user, password, *rest)
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
