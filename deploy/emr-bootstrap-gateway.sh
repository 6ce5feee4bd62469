#!/usr/bin/env bash
# EMR bootstrap action: install airflow-hybrid in its own venv and start its S3 gateway (systemd) on the node,
# with the union mount's cache tier on the instance store (/mnt, EMR's first instance-store or EBS volume).
#
#   aws emr create-cluster ... --bootstrap-actions \
#     Path=s3://<bucket>/bootstrap/emr-bootstrap-gateway.sh,Args=[s3://<bucket>/bootstrap/airflow_hybrid-<v>.whl,arn:aws:secretsmanager:<region>:<acct>:secret:hybrid-gateway-env]
#
# Arguments:
#   1. the provider wheel (s3:// or https://) to install, with its constraints.txt next to it (same prefix);
#   2. a Secrets Manager secret whose value is the env file of deploy/hybrid-gateway.service
#      (AIRFLOW_CONN_ONPREM_UNION, AIRFLOW_CONN_GATEWAY_KEYS, the members' connections; nothing is defaulted).
# Every node runs its own gateway on 127.0.0.1:9100 (set HYBRID_GATEWAY_HOST in the secret to serve other
# hosts, then put TLS in front or pass --ssl-certfile/--ssl-keyfile). Spark on the node then uses
#   spark.hadoop.fs.s3a.endpoint=http://127.0.0.1:9100  spark.hadoop.fs.s3a.path.style.access=true
set -euo pipefail

WHEEL="${1:?usage: emr-bootstrap-gateway.sh <wheel s3:// or https:// URL> <secrets manager secret id>}"
SECRET="${2:?usage: emr-bootstrap-gateway.sh <wheel s3:// or https:// URL> <secrets manager secret id>}"
PREFIX=/opt/hybrid-gateway
UNIT_URL="${HYBRID_GATEWAY_UNIT_URL:-$(dirname "$WHEEL")/hybrid-gateway.service}"

fetch() {  # fetch <url> <file>
  case "$1" in
    s3://*) aws s3 cp --only-show-errors "$1" "$2" ;;
    *) curl -fsSL -o "$2" "$1" ;;
  esac
}

sudo useradd --system --home-dir /var/lib/hybrid-gateway --shell /sbin/nologin hybrid-gateway 2>/dev/null || true
sudo install -d -o root -g root -m 0755 "$PREFIX"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fetch "$WHEEL" "$work/$(basename "$WHEEL")"
fetch "$(dirname "$WHEEL")/constraints.txt" "$work/constraints.txt"
fetch "$UNIT_URL" "$work/hybrid-gateway.service"

# Python 3.11+ (Amazon Linux 2023 on EMR 7 ships python3.11 as a package)
PY="$(command -v python3.11 || true)"
if [ -z "$PY" ]; then sudo dnf install -y -q python3.11 && PY="$(command -v python3.11)"; fi
sudo "$PY" -m venv "$PREFIX/venv"
sudo "$PREFIX/venv/bin/python" -m pip install -q --upgrade pip
sudo "$PREFIX/venv/bin/python" -m pip install -q -c "$work/constraints.txt" "$work/$(basename "$WHEEL")"

# the connections: from Secrets Manager into a root-only env file (never on the command line or in the unit)
sudo install -d -m 0750 /etc/hybrid-gateway
aws secretsmanager get-secret-value --secret-id "$SECRET" --query SecretString --output text \
  | sudo tee /etc/hybrid-gateway/env >/dev/null
sudo chmod 0600 /etc/hybrid-gateway/env

# the cache tier on instance storage (/mnt on EMR); the unit creates its directories at each start
sudo install -d -o hybrid-gateway -g hybrid-gateway -m 0750 /mnt/hybrid-cache /var/lib/hybrid-gateway
sudo install -m 0644 "$work/hybrid-gateway.service" /etc/systemd/system/hybrid-gateway.service
sudo systemctl daemon-reload
sudo systemctl enable --now hybrid-gateway.service
for _ in $(seq 30); do  # up when it answers (403 to an unsigned request: anonymous access is off)
  if curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:"$(sudo sed -n 's/^HYBRID_GATEWAY_PORT=//p' /etc/hybrid-gateway/env | tail -1 | grep . || echo 9100)"/ | grep -q 403; then
    echo "hybrid-gateway is up"; exit 0
  fi
  sleep 2
done
sudo journalctl -u hybrid-gateway --no-pager -n 50 >&2
exit 1
