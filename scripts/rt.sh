#!/usr/bin/env bash
# Installs Debian's Request Tracker 5 if missing, configures it for local use and
# starts its standalone server on 127.0.0.1. Idempotent: a running server is reused.
#
#   scripts/rt.sh start   install if needed, start, make the test token; prints env lines
#   scripts/rt.sh stop    stop the server this script started (by pid)
#   scripts/rt.sh env     print the RT_* variables for the running instance
#   scripts/rt.sh scrip enable|disable   turn rt-relay's webhook scrip on or off
#
# `start` also sets up what a mail-fed RT has (the Everyone group may create tickets and
# reply, so `rt-mailgate --queue General --action correspond --url http://127.0.0.1:8080/`
# works) and installs rt-relay's webhook scrip (rt/scrip/). Relays to notify are files
# {"url": ..., "secret": ...} in $WEBHOOK_DIR (tests add and remove their own).
#
# State lives in $RUN_DIR (default .run/ in the project): rt.pid, rt.log, rt-token.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUN_DIR=${RUN_DIR:-$ROOT/.run}
RT_PORT=${RT_PORT:-8080}
RT_HOST=127.0.0.1
RT_ROOT_PASSWORD=${RT_ROOT_PASSWORD:-rt-relay-local}
RT_LIB=/usr/share/request-tracker5/lib
RT_SERVER=/usr/share/request-tracker5/libexec/rt-server
SITE_CONFIG=/etc/request-tracker5/RT_SiteConfig.d/99-rt-relay.pm
RT_LOCAL_LIB=/usr/local/share/request-tracker5/lib
SCRIP_DIR=$ROOT/rt/scrip
WEBHOOK_DIR=${RT_RELAY_WEBHOOK_DIR:-/var/lib/request-tracker5/rt-relay-webhooks}
mkdir -p "$RUN_DIR"

log() { printf 'rt.sh: %s\n' "$*" >&2; }

install_rt() {
  if [ -x "$RT_SERVER" ] && [ -d /etc/request-tracker5 ]; then return; fi
  log "installing request-tracker5 from Debian (takes ~90 s)"
  debconf-set-selections <<SEL
request-tracker5 request-tracker5/dbconfig-install boolean true
request-tracker5 request-tracker5/database-type select sqlite3
request-tracker5 request-tracker5/db/basepath string /var/lib/dbconfig-common/sqlite3/request-tracker5
request-tracker5 request-tracker5/db/dbname string rtdb
request-tracker5 request-tracker5/initial-root-password password $RT_ROOT_PASSWORD
request-tracker5 request-tracker5/install-cronjobs boolean false
request-tracker5 request-tracker5/rtname string rt-relay.local
request-tracker5 request-tracker5/correspondaddress string rt@rt-relay.local
request-tracker5 request-tracker5/commentaddress string rt-comment@rt-relay.local
request-tracker5 request-tracker5/webbaseurl string http://$RT_HOST:$RT_PORT
SEL
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    request-tracker5 rt5-db-sqlite rt5-standalone >"$RUN_DIR/rt-install.log" 2>&1 \
    || { tail -n 40 "$RUN_DIR/rt-install.log" >&2; exit 1; }
}

configure_rt() {
  local want
  want=$(cat <<PM
# Written by rt-relay scripts/rt.sh for a local development/test instance.
Set(\$WebDomain, '$RT_HOST');
Set(\$WebPort, $RT_PORT);
Set(\$WebBaseURL, 'http://$RT_HOST:$RT_PORT');
Set(\$WebPath, '');
Set(\$MailCommand, 'testfile');
Set(\$LogToSTDERR, 'warning');
Set(\$LogToSyslog, undef);
# bcrypt cost 12 makes every password/token check ~400 ms; this is a local instance.
Set(\$BcryptCost, 4);
1;
PM
)
  if [ "$(cat "$SITE_CONFIG" 2>/dev/null)" != "$want" ]; then
    printf '%s\n' "$want" >"$SITE_CONFIG"
    rm -f "$RUN_DIR/rt-prepared"
  fi
}

# Runs RT's own Perl API with the site configuration loaded.
rt_perl() { perl -I"$RT_LIB" -e 'use RT; RT::LoadConfig(); RT::Init(); '"$1"; }

prepare_rt() {
  [ -f "$RUN_DIR/rt-prepared" ] && return
  # Re-hash root's password at the low bcrypt cost, and make the second queue the
  # filter tests use. Both are idempotent.
  RT_PW="$RT_ROOT_PASSWORD" rt_perl '
    my $u = RT::User->new(RT->SystemUser); $u->Load("root");
    my ($ok, $msg) = $u->SetPassword($ENV{RT_PW}); die "password: $msg" unless $ok;
    my $q = RT::Queue->new(RT->SystemUser); $q->Load("Support");
    $q->Create(Name => "Support", Description => "rt-relay second queue") unless $q->id;
  '
  touch "$RUN_DIR/rt-prepared"
}

# Mail intake and the webhook scrip; redone whenever the scrip's files change.
prepare_events() {
  local stamp
  stamp=$(cat "$SCRIP_DIR/RtRelayWebhook.pm" "$SCRIP_DIR/install.pl" | sha256sum | cut -c1-16)
  [ "$(cat "$RUN_DIR/rt-events-prepared" 2>/dev/null)" = "$stamp" ] && return
  install -D -m 644 "$SCRIP_DIR/RtRelayWebhook.pm" "$RT_LOCAL_LIB/RT/Action/RtRelayWebhook.pm"
  mkdir -p "$WEBHOOK_DIR" && chmod 700 "$WEBHOOK_DIR"
  rt_perl '
    my $everyone = RT::Group->new(RT->SystemUser); $everyone->LoadSystemInternalGroup("Everyone");
    for my $right (qw(CreateTicket ReplyToTicket)) {
      next if $everyone->PrincipalObj->HasRight(Right => $right, Object => $RT::System);
      my ($ok, $msg) = $everyone->PrincipalObj->GrantRight(Right => $right, Object => $RT::System);
      die "grant $right: $msg" unless $ok;
    }
  '
  perl -I"$RT_LIB" "$SCRIP_DIR/install.pl" --enable >/dev/null
  echo "$stamp" >"$RUN_DIR/rt-events-prepared"
}

running() {
  [ -f "$RUN_DIR/rt.pid" ] && kill -0 "$(cat "$RUN_DIR/rt.pid")" 2>/dev/null
}

http_code() { curl -s -o /dev/null -m 5 -w '%{http_code}' "$@" || true; }

start_server() {
  if running && [ "$(http_code "http://$RT_HOST:$RT_PORT/")" = 200 ]; then return; fi
  if [ "$(http_code "http://$RT_HOST:$RT_PORT/")" != 000 ]; then
    log "port $RT_PORT is taken by something this script did not start"; exit 1
  fi
  log "starting rt-server on $RT_HOST:$RT_PORT"
  setsid "$RT_SERVER" --host "$RT_HOST" --port "$RT_PORT" --max-keepalive-reqs 100 \
    >"$RUN_DIR/rt.log" 2>&1 </dev/null &
  echo $! >"$RUN_DIR/rt.pid"
  for _ in $(seq 1 120); do
    [ "$(http_code "http://$RT_HOST:$RT_PORT/")" = 200 ] && return
    running || { tail -n 30 "$RUN_DIR/rt.log" >&2; exit 1; }
    sleep 0.5
  done
  log "rt-server did not answer within 60 s"; tail -n 30 "$RUN_DIR/rt.log" >&2; exit 1
}

ensure_token() {
  local tok
  if [ -s "$RUN_DIR/rt-token" ]; then
    tok=$(cat "$RUN_DIR/rt-token")
    [ "$(http_code -H "Authorization: token $tok" "http://$RT_HOST:$RT_PORT/REST/2.0/queues/all")" = 200 ] && return
  fi
  # Remove old tokens first: RT checks a token against every token its owner has.
  rt_perl '
    my $u = RT::User->new(RT->SystemUser); $u->Load("root");
    my $tokens = RT::AuthTokens->new(RT->SystemUser); $tokens->LimitOwner(VALUE => $u->id);
    while (my $t = $tokens->Next) { $t->Delete }
    my $t = RT::AuthToken->new(RT->SystemUser);
    my ($id, $msg, $token) = $t->Create(Owner => $u->id, Description => "rt-relay tests");
    die "token: $msg" unless $id; print $token;
  ' >"$RUN_DIR/rt-token.new"
  mv "$RUN_DIR/rt-token.new" "$RUN_DIR/rt-token"
  chmod 600 "$RUN_DIR/rt-token"
}

print_env() {
  echo "RT_URL=http://$RT_HOST:$RT_PORT"
  echo "RT_USERNAME=root"
  echo "RT_PASSWORD=$RT_ROOT_PASSWORD"
  echo "RT_TOKEN=$(cat "$RUN_DIR/rt-token")"
}

case "${1:-start}" in
  start)
    install_rt; configure_rt; prepare_rt; prepare_events; start_server; ensure_token; print_env ;;
  stop)
    if running; then kill -- "-$(cat "$RUN_DIR/rt.pid")" 2>/dev/null || kill "$(cat "$RUN_DIR/rt.pid")"; fi
    rm -f "$RUN_DIR/rt.pid" ;;
  env) print_env ;;
  scrip)
    case "${2:-}" in
      enable|disable) perl -I"$RT_LIB" "$SCRIP_DIR/install.pl" "--$2" ;;
      *) echo "usage: $0 scrip enable|disable" >&2; exit 2 ;;
    esac ;;
  *) echo "usage: $0 start|stop|env|scrip enable|disable" >&2; exit 2 ;;
esac
