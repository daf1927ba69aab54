#!/bin/sh
# certbot deploy hook for pounce (deploy/systemd/pounce-tls.conf): after a
# renewal, copy the new chain and key where pounce reads them, readable by the
# pounce-tls group, each by an atomic rename; then hot-upgrade pounce, whose
# successor loads them (if they fail to load, the old process keeps serving).
#
#   certbot certonly --standalone -d example.com --deploy-hook /etc/pounce/certbot-hook.sh
#   (certbot renew remembers the hook)
#
# Docker: the same copy, then `docker kill -s HUP <container>` instead of
# systemctl (the container's pounce hot-upgrades in place; see the guide).
set -eu
: "${RENEWED_LINEAGE:?run me as certbot --deploy-hook}"
dir=${POUNCE_TLS_DIR:-/etc/pounce/tls}
group=${POUNCE_TLS_GROUP:-pounce-tls}
install -d -m 0750 -g "$group" "$dir"
install -m 0640 -g "$group" "$RENEWED_LINEAGE/fullchain.pem" "$dir/.fullchain.pem.new"
install -m 0640 -g "$group" "$RENEWED_LINEAGE/privkey.pem" "$dir/.privkey.pem.new"
mv -f "$dir/.fullchain.pem.new" "$dir/fullchain.pem"
mv -f "$dir/.privkey.pem.new" "$dir/privkey.pem"
exec ${POUNCE_RELOAD:-systemctl reload pounce}
