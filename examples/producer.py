# Puts a pulpo message on beanstalkd from Python, with a plain socket.
import json, socket

message = {"header": {"request_type": "send_email", "priority": 100, "ttr": 60},
           "body": {"payload": "hello from Python", "to": "a@example.com"}}
body = json.dumps(message).encode()
with socket.create_connection(("127.0.0.1", 11300)) as conn:
    reply = conn.makefile("rb")
    conn.sendall(b"use default\r\n")
    assert reply.readline() == b"USING default\r\n"
    # put <priority> <delay> <ttr> <bytes>: the same values as the header's
    conn.sendall(b"put 100 0 60 %d\r\n%s\r\n" % (len(body), body))
    print(reply.readline().decode().strip())  # INSERTED <job id>
