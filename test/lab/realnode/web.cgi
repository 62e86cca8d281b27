#!/bin/sh
# The lab web image's answer: which pod and node served the request, and the
# client address it saw (was it preserved?), in the lab kubelet's JSON shape.
# POD_NAME, POD_NAMESPACE, NODE_NAME and POD_IP come from the downward API.
c=${REMOTE_ADDR#\[}; c=${c%\]}; c=${c#::ffff:}
printf 'Content-Type: application/json\r\n\r\n{"pod":"%s","namespace":"%s","node":"%s","client":"%s","server":"%s"}\n' "$POD_NAME" "$POD_NAMESPACE" "$NODE_NAME" "$c" "$POD_IP"
