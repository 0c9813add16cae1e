#!/usr/bin/env bash
# Packs TunStack.sln (Release, already built) and checks the packages a user gets: exactly TunStack and
# TunStack.AspNetCore, each with its README, the MIT license expression, XML docs and a symbols package with the PDB;
# then builds, from those packages alone (no project reference), the README's ten-line echo server and a Kestrel
# host that uses the transport. Usage: tests/check-packages.sh DOTNET OUT-DIR. Exit 0 when every check passes.
set -euo pipefail

DOTNET=$1
OUT=$2
ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
VERSION=0.1.0

rm -rf "$OUT"
mkdir -p "$OUT/packages"
"$DOTNET" pack "$ROOT/TunStack.sln" -c Release --no-build --nologo -o "$OUT/packages" >"$OUT/pack.log" 2>&1 ||
    { cat "$OUT/pack.log"; echo "check-packages: dotnet pack failed"; exit 1; }

python3 - "$OUT/packages" "$VERSION" <<'EOF'
import os, re, sys, zipfile
folder, version = sys.argv[1], sys.argv[2]
expected = {f"{p}.{version}.{ext}" for p in ("TunStack", "TunStack.AspNetCore") for ext in ("nupkg", "snupkg")}
found = set(os.listdir(folder))
problems = []
if found != expected:
    problems.append(f"packages made: {sorted(found)}, expected exactly {sorted(expected)}")
for package, assembly in (("TunStack", "TunStack.Core"), ("TunStack.AspNetCore", "TunStack.AspNetCore")):
    nupkg = os.path.join(folder, f"{package}.{version}.nupkg")
    snupkg = os.path.join(folder, f"{package}.{version}.snupkg")
    if not os.path.exists(nupkg) or not os.path.exists(snupkg):
        continue
    with zipfile.ZipFile(nupkg) as z:
        names = set(z.namelist())
        nuspec = z.read(f"{package}.nuspec").decode("utf-8-sig")
        readme = z.read("README.md").decode() if "README.md" in names else ""
    if '<license type="expression">MIT</license>' not in nuspec:
        problems.append(f"{package}: no MIT license expression in the nuspec")
    if "<readme>README.md</readme>" not in nuspec or len(readme) < 200 or "TunStack" not in readme:
        problems.append(f"{package}: README.md missing from the package or not declared ({len(readme)} chars)")
    for lib in (f"lib/net10.0/{assembly}.dll", f"lib/net10.0/{assembly}.xml"):
        if lib not in names:
            problems.append(f"{package}: {lib} missing")
    if package == "TunStack.AspNetCore" and not re.search(rf'<dependency id="TunStack" version="{re.escape(version)}"', nuspec):
        problems.append(f"{package}: no dependency on TunStack {version}")
    with zipfile.ZipFile(snupkg) as z:
        if f"lib/net10.0/{assembly}.pdb" not in z.namelist():
            problems.append(f"{package}: the symbols package has no {assembly}.pdb")
for p in problems:
    print("check-packages:", p)
sys.exit(1 if problems else 0)
EOF

# A consumer that knows only the packages: its own package cache (so a stale TunStack of an earlier run is never
# used), the packages just made and the machine's cache as the only sources (no network needed).
CONSUMER="$OUT/consumer"
mkdir -p "$CONSUMER/echo" "$CONSUMER/kestrel"
cat >"$CONSUMER/nuget.config" <<EOF
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <config><add key="globalPackagesFolder" value="$CONSUMER/.nuget" /></config>
  <packageSources>
    <clear />
    <add key="made" value="$OUT/packages" />
    <add key="cache" value="${NUGET_PACKAGES:-$HOME/.nuget/packages}" />
  </packageSources>
</configuration>
EOF
# Keep the repository's Directory.*.props away from the consumer.
printf '<Project />\n' >"$CONSUMER/Directory.Build.props"
printf '<Project />\n' >"$CONSUMER/Directory.Packages.props"
cat >"$CONSUMER/echo/Echo.csproj" <<EOF
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup><OutputType>Exe</OutputType><TargetFramework>net10.0</TargetFramework><ImplicitUsings>enable</ImplicitUsings>
    <Nullable>enable</Nullable><TreatWarningsAsErrors>true</TreatWarningsAsErrors></PropertyGroup>
  <ItemGroup><PackageReference Include="TunStack" Version="$VERSION" /></ItemGroup>
</Project>
EOF
# The README's C# block, verbatim.
awk '/^```csharp/{f=1;next} /^```/{if(f)exit} f' "$ROOT/README.md" >"$CONSUMER/echo/Program.cs"
[[ -s $CONSUMER/echo/Program.cs ]] || { echo "check-packages: no C# block in README.md"; exit 1; }
cat >"$CONSUMER/kestrel/Kestrel.csproj" <<EOF
<Project Sdk="Microsoft.NET.Sdk.Web">
  <PropertyGroup><TargetFramework>net10.0</TargetFramework><ImplicitUsings>enable</ImplicitUsings>
    <Nullable>enable</Nullable><TreatWarningsAsErrors>true</TreatWarningsAsErrors></PropertyGroup>
  <ItemGroup><PackageReference Include="TunStack.AspNetCore" Version="$VERSION" /></ItemGroup>
</Project>
EOF
cat >"$CONSUMER/kestrel/Program.cs" <<'EOF'
using System.Net;
using TunStack;
using TunStack.AspNetCore;
using TunStack.Linux;

await using var stack = await TunStackHost.StartAsync(TunDevice.Open("tun0"),
    new TunStackOptions { Addresses = [IPAddress.Parse("198.18.0.2")] });
var builder = WebApplication.CreateBuilder(args);
builder.WebHost.UseTunStack(stack);
builder.WebHost.UseUrls("http://198.18.0.2:80");
var app = builder.Build();
app.MapGet("/", (HttpContext context) => context.Features.Get<ITunStackConnectionFeature>()?.Info.ToString() ?? "");
await app.RunAsync();
EOF
for project in echo/Echo.csproj kestrel/Kestrel.csproj; do
    if ! "$DOTNET" build "$CONSUMER/$project" -c Release --nologo --configfile "$CONSUMER/nuget.config" >"$OUT/consumer.log" 2>&1; then
        cat "$OUT/consumer.log"
        echo "check-packages: $project does not build against the packages"
        exit 1
    fi
done
echo "check-packages: TunStack and TunStack.AspNetCore $VERSION packed with README, license, docs and symbols; the README's example and a Kestrel host build from them"
