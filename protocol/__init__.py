"""What every gridlib process must agree on (DESIGN §2, §4, §5, §7).

The envelope codec, message types, error codes, socket policy, Curve keys,
the ZAP authenticator, the discovery beacon and the liveness tracker.  This
package never imports a pickler: nothing here deserializes a payload.
"""
