"""What every gridlib process must agree on (docs/architecture.md §3, §4).

The envelope codec, message types, error codes, socket policy, Curve keys,
the ZAP authenticator, the discovery beacon and the liveness tracker.  This
package never imports a pickler: nothing here deserializes a payload.
"""
