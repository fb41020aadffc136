#!/bin/sh
# The operators' runbook way of checking gateway hosts: one `ssh host 'command'` per check, host after host.
# The same 27 gateway checks the suite's gate runs per gateway (unit, .env, files, identity, process,
# listeners, journal, pin, CA, clocks), each its own ssh connection, as written in a runbook.
# It is the baseline of benchmarks/fleet.py; it reads, never changes, the hosts.
#
#   benchmarks/gateway_checks_by_ssh.sh SSH_CONFIG EDGE_ADDRESS:PORT AGENT_DOMAIN HOST...
#
# Prints one line per check (ok/FAIL host check); exits 1 when any check failed.
set -u
cfg=$1 edge=$2 domain=$3
shift 3
unit=viworks-gateway-agent.service
env=/opt/viworks/agent/.env
certs=/opt/viworks/agent/certs
scripts=/opt/viworks/scripts
failed=0

# What the checks compare against, read once on the runner: the served key's pin and the runner's clock.
served_pin=$(openssl s_client -connect "$edge" -servername "$domain" </dev/null 2>/dev/null \
  | openssl x509 -pubkey -noout | openssl pkey -pubin -outform DER | openssl dgst -sha256 -binary | base64)

check() {
  name=$1
  shift
  if ssh -F "$cfg" -o ControlMaster=no -o ControlPath=none "$host" "$@" >/dev/null 2>&1; then
    echo "ok   $host $name"
  else
    echo "FAIL $host $name"
    failed=1
  fi
}

for host in "$@"; do
  check unit-loaded-enabled-active "systemctl is-enabled --quiet $unit && systemctl is-active --quiet $unit"
  check unit-not-crash-looping "[ \"\$(systemctl show -p NRestarts --value $unit)\" -le 3 ]"
  check unit-restarts "systemctl show -p Restart --value $unit | grep -Eqx 'always|on-failure'"
  check unit-program-executable "test -x \"\$(systemctl show -p ExecStart --value $unit | sed -n 's/.*path=\\([^ ;]*\\).*/\\1/p')\""
  check unit-environment-file "test -f $env"
  check unit-expected-paths "systemctl cat $unit | grep -q '^ExecStart=/opt/viworks/viworks-gateway-agent' && systemctl cat $unit | grep -q '^WorkingDirectory=/opt/viworks/agent'"
  check env-required-keys "for k in VIW_AGENT_BACKEND_URL VIW_AGENT_ID VIW_AGENT_CERT_PATH VIW_AGENT_KEY_PATH VIW_AGENT_TRUST_BUNDLE VIW_AGENT_BACKEND_SPKI_PIN VIW_AGENT_SITE VIW_AGENT_CONTAINER_ENGINE VIW_AGENT_SCRIPTS_ROOT VIW_AGENT_MAX_CONCURRENCY VIW_AGENT_CMD_TIMEOUT_SECS VIW_AGENT_FEATURE_EXEC_ENABLE VIW_AGENT_FEATURE_INBOUND_HTTP RUST_LOG; do sudo grep -q \"^\$k=.\" $env || exit 1; done"
  check env-backend-url "sudo grep -q '^VIW_AGENT_BACKEND_URL=wss://$domain/ws/agent' $env"
  check env-pin-well-formed "sudo grep -Eq '^VIW_AGENT_BACKEND_SPKI_PIN=(sha256/)?[A-Za-z0-9+/]{43}=' $env"
  check env-inbound-http-off "sudo grep -Eq '^VIW_AGENT_FEATURE_INBOUND_HTTP=(false|0|no)' $env"
  check env-exec-on "sudo grep -Eq '^VIW_AGENT_FEATURE_EXEC_ENABLE=(true|1|yes)' $env"
  check files-not-world-writable "! sudo find $env $certs /opt/viworks/viworks-gateway-agent $scripts -perm -o+w | grep -q ."
  check scripts-executable "for s in add_user.sh delete_user.sh add_vpn_user.sh delete_vpn_user.sh; do sudo test -x $scripts/\$s || exit 1; done"
  check scripts-root-owned "for s in add_user.sh delete_user.sh add_vpn_user.sh delete_vpn_user.sh; do [ \"\$(sudo stat -c %u:%a $scripts/\$s)\" = 0:755 ] || exit 1; done"
  check identity-present "sudo test -f $certs/client.crt && sudo test -f $certs/client.key && sudo test -f $certs/ca.crt"
  check identity-key-private "sudo stat -c %a $certs/client.key | grep -Eqx '600|400'"
  check identity-not-near-expiry "sudo openssl x509 -in $certs/client.crt -noout -checkend 604800"
  check identity-chains-to-ca "sudo openssl verify -CAfile $certs/ca.crt $certs/client.crt"
  check identity-matches-key "[ \"\$(sudo openssl x509 -in $certs/client.crt -noout -pubkey)\" = \"\$(sudo openssl pkey -in $certs/client.key -pubout)\" ]"
  check identity-cn-is-agent-id "sudo openssl x509 -in $certs/client.crt -noout -subject | grep -q \"CN *= *\$(sudo sed -n 's/^VIW_AGENT_ID=//p' $env)\$\""
  check process-runs-program "pid=\$(systemctl show -p MainPID --value $unit); [ \"\$pid\" -gt 0 ] && sudo tr '\\0' ' ' < /proc/\$pid/cmdline | grep -q /opt/viworks/viworks-gateway-agent"
  check listens-only-sshd "! sudo ss -H -tlnp | grep -v '\"sshd\"' | grep -v '127.0.0.11:' | grep -q ."
  check journal-connected "sudo journalctl _SYSTEMD_INVOCATION_ID=\$(systemctl show -p InvocationID --value $unit) -q | grep -q 'session established'"
  check pin-matches-served "sudo grep -q '^VIW_AGENT_BACKEND_SPKI_PIN=.*$served_pin' $env"
  check ca-is-nginx-client-ca "sudo openssl x509 -in $certs/ca.crt -noout -subject | grep -q 'Internal CA'"
  check clock-vs-runner "[ \$(( \$(date +%s) - $(date +%s) )) -le 30 ] && [ \$(( $(date +%s) - \$(date +%s) )) -le 30 ]"
  check clock-vs-backend "[ \$(( \$(date +%s) - $(date +%s) )) -le 30 ]"
done
exit $failed
