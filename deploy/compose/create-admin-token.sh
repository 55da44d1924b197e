#!/bin/sh
# Creates an admin token for a broker that runs against its own PostgreSQL
# (with --embedded the broker writes DIR/admin.token itself; otherwise nothing
# makes the first one). The token is random, of the form the broker makes
# (sn_ + 43 characters of base64url); only its SHA-256 goes to the tokens
# table, through psql's standard input. The token itself is written to FILE
# (mode 0600) and nowhere else: not printed, not on any command line.
# The broker must have started once before: its migrations make the table.
#
# Usage: create-admin-token.sh FILE PSQL-COMMAND...
#   the compose file's database:
#     deploy/compose/create-admin-token.sh admin.token \
#         docker compose -f deploy/docker-compose.yml exec -T postgres psql -U sn_broker -d sn_broker
#   any other (connection parameters as for the broker, password from ~/.pgpass):
#     deploy/compose/create-admin-token.sh /root/sn-broker-admin.token \
#         psql "host=db.example.org dbname=sn_broker user=sn_broker sslmode=verify-full"
set -eu
if [ $# -lt 2 ]; then
    echo "usage: $0 FILE PSQL-COMMAND..." >&2
    exit 2
fi
file=$1
shift
if [ -e "$file" ]; then
    echo "create-admin-token: $file exists; not overwriting it" >&2
    exit 1
fi
umask 077
trap 'rm -f "$file.id" "$file.new"' EXIT
token="sn_$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
hash=$(printf '%s' "$token" | sha256sum | cut -d ' ' -f 1)
name="admin (create-admin-token.sh, $(date -u +%Y-%m-%dT%H:%M:%SZ))"
printf '%s\n' '\set ON_ERROR_STOP on' \
    "INSERT INTO tokens (role, name, token_sha256) VALUES ('admin', '$name', decode('$hash', 'hex')) RETURNING id;" |
    "$@" -X -q -t -A >"$file.id"
id=$(tr -d ' \r\n' <"$file.id")
rm -f "$file.id"
printf '%s\n' "$token" >"$file.new"
mv "$file.new" "$file"
echo "create-admin-token: admin token $id written to $file (mode 0600)"
