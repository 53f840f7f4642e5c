# TLS client context for the broker connection (config broker.tls, ca_file,
# tls_verify). Shared by the HALs of every family with ssl (unix, ESP32, Pico W).
import binascii


def pem_to_der(data):
    # MicroPython's mbedTLS build accepts DER only in load_verify_locations:
    # convert the first certificate of a PEM file.
    if not data.startswith(b"-----BEGIN"):
        return data
    lines = data.split(b"\n")
    body = []
    inside = False
    for ln in lines:
        ln = ln.strip()
        if ln.startswith(b"-----BEGIN"):
            inside = True
        elif ln.startswith(b"-----END"):
            break
        elif inside:
            body.append(ln)
    return binascii.a2b_base64(b"".join(body))


def context(cfg):
    import ssl
    b = cfg["broker"]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if b.get("ca_file"):
        with open(b["ca_file"], "rb") as f:
            ctx.load_verify_locations(cadata=pem_to_der(f.read()))
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.verify_mode = ssl.CERT_REQUIRED if b.get("tls_verify") else ssl.CERT_NONE
    return ctx
