"""hookwise's demo: what the original project's test_runner.py did, step by step.

Run it plainly, then under hookwise:

    python examples/demo.py arg1 arg2
    python driver.py examples/demo.py arg1 arg2                                  # built-in hooks
    python driver.py --config examples/hookwise.toml examples/demo.py arg1 arg2  # plus this file's functions
"""

import os
import subprocess
import sys
import tempfile
import time


class Test1:
    """A class whose methods the TOML file beside this script hooks."""

    def func_test_user_code(self, x, y, *args, **kwargs):
        print("==========================================================")
        print("Method : func_test_user_code")
        print("    x : ", x)
        print("    y : ", y)
        print("    args are : ", args)
        print("    kwargs are : ", kwargs)
        print("==========================================================")
        return x / y

    class Nested:
        def scale(self, value, *factors, offset=0, **options):
            result = value
            for factor in factors:
                result *= factor
            return result + offset

    def func_test_subprocess_init(self):
        print("Method : func_test_subprocess_init")
        listing = subprocess.Popen(["echo", "hello from a list command"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        print(listing.communicate()[0])
        shell = subprocess.Popen("echo hello from a shell command", shell=True)
        print("returned value:", shell.wait())

    def func_test_os_system(self):
        print("Method : func_test_os_system")
        print("returned value:", os.system("echo hello from os.system"))

    def func_test_exec_os_system(self):
        print("Method : func_test_exec_os_system")
        exec("import os\nprint('returned value:', os.system('echo hello from exec'))")

    def func_test_open(self):
        print("Method : func_test_open")
        path = os.path.join(tempfile.gettempdir(), "hookwise-demo.txt")
        with open(path, "w") as handle:
            handle.write("written by the hookwise demo\n")
        with open(path) as handle:
            print("read back:", handle.read().strip())
        os.unlink(path)


def func_test_user_code_non_class(name="Tester Name"):
    print("Inside user function non-class :", name)


def timed(label, function, *args, **kwargs):
    print(f"\nCalling method {label}")
    began = time.perf_counter()
    try:
        print(function(*args, **kwargs))
    except ZeroDivisionError:
        print("Error caught")
    print(f"Time Taken: {time.perf_counter() - began:.10f}")


def main():
    print("Command args are :", sys.argv)
    test = Test1()
    timed("Test1.func_test_user_code", test.func_test_user_code, 10, 2, 1, 1, name="Tester Name")
    timed("Test1.func_test_user_code", test.func_test_user_code, 10, 0, name="Tester Name")
    timed("Test1.Nested.scale", Test1.Nested().scale, 2, 3, 4, offset=1, unit="cm")
    timed("func_test_user_code_non_class", func_test_user_code_non_class)
    timed("Test1.func_test_subprocess_init", test.func_test_subprocess_init)
    timed("Test1.func_test_os_system", test.func_test_os_system)
    timed("Test1.func_test_exec_os_system", test.func_test_exec_os_system)
    timed("Test1.func_test_open", test.func_test_open)


if __name__ == "__main__":
    main()
