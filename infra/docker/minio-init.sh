#!/bin/sh
# Bucket-init job: buckets of the project and a service account (not the root user) for the services.
set -eu
mc alias set axis http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD"
for bucket in axis-images axis-datasets axis-mlflow axis-dead-letters; do
  mc mb --ignore-existing "axis/$bucket"
done
mc admin user add axis "$S3_ACCESS_KEY" "$S3_SECRET_KEY"
mc admin policy attach axis readwrite --user "$S3_ACCESS_KEY" || true  # already attached on a re-run
echo "buckets and service account ready"
