#!/bin/sh
# The compose file's one-shot "init" service, run as root before the others:
#  - turns the PostgreSQL password (a compose secret, a file of the host) into
#    a libpq password file that the broker's user may read and nobody else
#    (libpq ignores a password file that its group or others can read, and
#    compose cannot set the owner or mode of a secret file);
#  - makes a demo CA and a certificate for the mail catcher, so that the
#    brokers send mail with STARTTLS and verify the server, as in production
#    (sn-broker refuses plain-text SMTP off loopback). The CA's key is thrown
#    away once the certificate is signed; both are kept across restarts.
# Usage: init.sh PASSWORD_FILE BROKER_DIR MAIL_DIR
#   BROKER_DIR gets pgpass (uid SN_UID, default 10001, mode 0600) and
#   smtp-ca.pem; MAIL_DIR gets cert.pem and key.pem (root, mode 0640).
set -eu
password_file=$1
broker_dir=$2
mail_dir=$3
uid=${SN_UID:-10001}
umask 077

# as the postgres image reads POSTGRES_PASSWORD_FILE: trailing newlines dropped
password=$(cat "$password_file")
case "$password" in
    "") echo "init: $password_file is empty" >&2; exit 1 ;;
    *"
"*) echo "init: $password_file holds more than one line" >&2; exit 1 ;;
esac
# pgpass fields escape backslash and colon
escaped=$(printf '%s' "$password" | sed -e 's/\\/\\\\/g' -e 's/:/\\:/g')
printf '*:*:sn_broker:sn_broker:%s\n' "$escaped" > "$broker_dir/pgpass.new"
chown "$uid:$uid" "$broker_dir/pgpass.new"
chmod 0600 "$broker_dir/pgpass.new"
mv "$broker_dir/pgpass.new" "$broker_dir/pgpass"

if [ ! -s "$broker_dir/smtp-ca.pem" ] || [ ! -s "$mail_dir/cert.pem" ] || [ ! -s "$mail_dir/key.pem" ]; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=sn-broker compose demo CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=mailpit" \
        -keyout "$work/key.pem" -out "$work/mailpit.csr" 2>/dev/null
    printf '%s\n' "subjectAltName=DNS:mailpit" "basicConstraints=CA:FALSE" \
        "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" > "$work/ext"
    openssl x509 -req -in "$work/mailpit.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
        -set_serial "0x$(openssl rand -hex 16)" -days 825 -extfile "$work/ext" \
        -out "$work/cert.pem" 2>/dev/null
    chmod 0640 "$work/key.pem"
    chmod 0644 "$work/cert.pem" "$work/ca.pem"
    mv "$work/key.pem" "$mail_dir/key.pem"
    mv "$work/cert.pem" "$mail_dir/cert.pem"
    mv "$work/ca.pem" "$broker_dir/smtp-ca.pem"
    echo "init: made a demo CA and a certificate for mailpit"
fi
echo "init: $broker_dir/pgpass written"
