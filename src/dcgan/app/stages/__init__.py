"""Pipeline stages. Each is thin: parse args, load its params section, call the library, write."""
