"""Message classes for a .proto at test time, from a descriptor set protoc makes now
(Debian has python3-protobuf but no grpcio-tools, so nothing is generated ahead).

    from protos import load_messages
    M = load_messages("proto/user.proto")
    User = M("user.User")
"""
import os
import subprocess
import tempfile

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory


def load_messages(proto):
    """Returns cls(full_name) -> the message class of that name."""
    proto = os.path.realpath(proto)  # protoc wants the file under its -I path, spelled alike
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "set.pb")
        subprocess.run(["protoc", "--include_imports", "--descriptor_set_out=" + out,
                        "-I", os.path.dirname(proto), proto], check=True)
        with open(out, "rb") as f:
            fds = descriptor_pb2.FileDescriptorSet.FromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    for fd in fds.file:
        pool.Add(fd)
    factory = message_factory.MessageFactory(pool)

    def cls(name):
        d = pool.FindMessageTypeByName(name)
        get = getattr(message_factory, "GetMessageClass", None)
        return get(d) if get else factory.GetPrototype(d)
    return cls
