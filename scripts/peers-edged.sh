#!/bin/sh
# scripts/peers-edged.sh BROKER TOPIC QOS — edged in the "edged" slot of the shared
# side-by-side harness (../shared/bench/peers, see its README): it writes a config for
# the harness's workload (JSON {"sensor","ts","value"} on sensors/<id>, 10 s event-time
# windows) into a fresh temp dir and execs edged, so the harness measures edged's PID.
# Windows go out over MQTT with the series under the key "sensor", as the harness
# expects; run it with EDGED_OUTPUT=mqtt EDGED_OUT_TOPIC='edged/peers/agg/#'
# (`make bench-peers` does all of this).
set -eu
broker=$1 topic=$2 qos=$3
bin=${EDGED_BIN:-$(dirname "$0")/../bin/edged}
dir=$(mktemp -d /tmp/edged-peers.XXXXXX)
cat > "$dir/edged.yaml" <<YAML
device: peers
data_dir: $dir/data
http: {listen: "127.0.0.1:0"}
mqtt:
  broker: $broker
  client_id: edged-peers-$$
  subscriptions:
    - topic: "$topic"
      format: json
      qos: $qos
      series: "{2}"
      fields: [{path: value}]
      time: {path: ts, format: unix_ms}
sensors:
  sim: {enabled: false}
  thermal: {enabled: false}
aggregate:
  windows: [10s]
  lateness: 1s
  idle_after: 1s
  mqtt_output: {enabled: true, qos: 1, series_key: sensor}
YAML
exec "$bin" run -c "$dir/edged.yaml"
