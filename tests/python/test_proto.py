"""The checked-in freshet_pb2.py is exactly what clients/python/gen_proto.sh makes of
schema/freshet.proto, so the Python client cannot drift from the protocol."""
import os
import subprocess
import tempfile
import unittest

from support import ROOT


class ProtoDrift(unittest.TestCase):
    def test_regenerated_file_is_identical(self):
        checked_in = os.path.join(ROOT, "clients", "python", "freshet", "freshet_pb2.py")
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([os.path.join(ROOT, "clients", "python", "gen_proto.sh"), tmp],
                           check=True, capture_output=True)
            with open(os.path.join(tmp, "freshet_pb2.py"), "rb") as fh:
                fresh = fh.read()
        with open(checked_in, "rb") as fh:
            current = fh.read()
        self.assertTrue(fresh, "protoc produced an empty file")
        self.assertEqual(current, fresh, "clients/python/freshet/freshet_pb2.py is stale: run "
                                         "clients/python/gen_proto.sh and check the result in")

    def test_module_matches_schema_ops(self):
        import freshet.freshet_pb2 as pb
        with open(os.path.join(ROOT, "schema", "freshet.proto")) as fh:
            text = fh.read()
        for op in ("OP_APPLY", "OP_PUT", "OP_GET", "OP_STATUS", "OP_SOURCES", "OP_EXPORT"):
            self.assertIn(op, text)
            self.assertTrue(hasattr(pb, op), op)
        self.assertEqual((pb.OP_PUT, pb.OP_GET, pb.OP_EXPORT), (3, 4, 7))


if __name__ == "__main__":
    unittest.main()
