#Requires -Version 2.0
<#
.SYNOPSIS
    Dump the Windows Firewall rules and policy state of this host as JSON (READ ONLY).

.DESCRIPTION
    Contributes real fixtures to the configmgr.nap unit tests: the output has the shape of
    tests/unit/plugins/action/fixtures/windows/*.json, which the fake Windows host loads
    (FakeWindowsHost.from_dump). It makes one pass over (New-Object -ComObject HNetCfg.FwPolicy2).Rules,
    exactly as the win_nap_firewall read does, and changes nothing.

    Runs on Windows Server 2008 and later with PowerShell 2.0 or later (no ConvertTo-Json needed).
    Review the file before you share it: rule names, descriptions and addresses describe your network.
    -Anonymize replaces every IPv4 address by one of 198.18.0.0/15 (same address -> same replacement,
    masks kept) and every IPv6 address by one of 2001:db8::/32.

.EXAMPLE
    powershell -ExecutionPolicy Bypass -File dump-firewall.ps1 -Path C:\temp\fw.json -Anonymize

.EXAMPLE
    .\dump-firewall.ps1 -Group 'ConfigMgr NAP' | Out-File -Encoding UTF8 fw.json
#>
[CmdletBinding()]
param (
    # Write here instead of to the output.
    [string]$Path,
    # Only rules of this group (Grouping); default: every rule.
    [string]$Group,
    # Replace addresses by documentation/benchmark addresses.
    [switch]$Anonymize
)
$ErrorActionPreference = 'Stop'

function ConvertTo-JsonText {
    param ($Value)
    if ($null -eq $Value) { return 'null' }
    if ($Value -is [bool]) { if ($Value) { return 'true' } else { return 'false' } }
    if ($Value -is [int] -or $Value -is [long]) { return [string]$Value }
    if ($Value -is [System.Collections.IDictionary]) {
        $parts = @()
        foreach ($key in @($Value.Keys | Sort-Object)) {
            $parts += (ConvertTo-JsonText -Value ([string]$key)) + ': ' + (ConvertTo-JsonText -Value $Value[$key])
        }
        return '{' + ($parts -join ', ') + '}'
    }
    if ($Value -is [System.Collections.IEnumerable] -and -not ($Value -is [string])) {
        $parts = @()
        foreach ($item in $Value) { $parts += ConvertTo-JsonText -Value $item }
        return "[`n  " + ($parts -join ",`n  ") + "`n]"
    }
    $text = [string]$Value
    $builder = New-Object -TypeName System.Text.StringBuilder
    [void]$builder.Append('"')
    foreach ($char in $text.ToCharArray()) {
        $code = [int]$char
        if ($char -eq '"') { [void]$builder.Append('\"') }
        elseif ($char -eq '\') { [void]$builder.Append('\\') }
        elseif ($code -lt 32 -or $code -gt 126) { [void]$builder.Append(('\u{0:x4}' -f $code)) }
        else { [void]$builder.Append($char) }
    }
    [void]$builder.Append('"')
    return $builder.ToString()
}

$script:map = @{}
function Hide-Address {
    param ([string]$Text)
    if (-not $Anonymize -or [string]::IsNullOrEmpty($Text) -or $Text -eq '*') { return $Text }
    $out = @()
    foreach ($item in $Text.Split(',')) {
        $parts = $item.Split('/')
        $hidden = @()
        foreach ($address in $parts[0].Split('-')) {
            $ip = $null
            if ([System.Net.IPAddress]::TryParse($address, [ref]$ip)) {
                if (-not $script:map.ContainsKey($address)) {
                    $n = $script:map.Count + 1
                    if ($ip.AddressFamily -eq 'InterNetworkV6') {
                        $script:map[$address] = '2001:db8::' + ('{0:x}' -f $n)
                    }
                    else {
                        $script:map[$address] = '198.18.' + [int][math]::Floor($n / 256) + '.' + ($n % 256)
                    }
                }
                $hidden += $script:map[$address]
            }
            else {
                $hidden += $address
            }
        }
        $parts[0] = $hidden -join '-'
        $out += $parts -join '/'
    }
    return $out -join ','
}

$policy = New-Object -ComObject HNetCfg.FwPolicy2
$profiles = @{}
foreach ($entry in @(@('domain', 1), @('private', 2), @('public', 4))) {
    $profiles[$entry[0]] = @{
        enabled = [bool]$policy.FirewallEnabled($entry[1])
        default_inbound_action = [int]$policy.DefaultInboundAction($entry[1])
        block_all_inbound = [bool]$policy.BlockAllInboundTraffic($entry[1])
    }
}
$rules = @()
foreach ($rule in $policy.Rules) {
    if ($Group -and [string]$rule.Grouping -ne $Group) { continue }
    $rules += @{
        Name = [string]$rule.Name
        Description = [string]$rule.Description
        Grouping = [string]$rule.Grouping
        Direction = [int]$rule.Direction
        Action = [int]$rule.Action
        Protocol = [int]$rule.Protocol
        LocalPorts = [string]$rule.LocalPorts
        RemotePorts = [string]$rule.RemotePorts
        LocalAddresses = Hide-Address -Text ([string]$rule.LocalAddresses)
        RemoteAddresses = Hide-Address -Text ([string]$rule.RemoteAddresses)
        Profiles = [int]$rule.Profiles
        Enabled = [bool]$rule.Enabled
        InterfaceTypes = [string]$rule.InterfaceTypes
        EdgeTraversal = [bool]$rule.EdgeTraversal
        ApplicationName = [string]$rule.ApplicationName
        ServiceName = [string]$rule.ServiceName
        IcmpTypesAndCodes = [string]$rule.IcmpTypesAndCodes
    }
}
$doc = @{
    _source = 'REAL: dumped by hack/windows/dump-firewall.ps1 on ' + (Get-Date -Format 'yyyy-MM-dd') +
        $(if ($Anonymize) { ' (addresses anonymized)' } else { '' })
    format = 1
    os_version = [Environment]::OSVersion.Version.ToString()
    ps_version = $PSVersionTable.PSVersion.ToString()
    local_policy_modify_state = [int]$policy.LocalPolicyModifyState
    current_profile_types = [int]$policy.CurrentProfileTypes
    profiles = $profiles
    rules = $rules
}
$json = ConvertTo-JsonText -Value $doc
if ($Path) {
    [System.IO.File]::WriteAllText($Path, $json, (New-Object -TypeName System.Text.UTF8Encoding -ArgumentList $false))
    Write-Host ("{0} rule(s) written to {1}" -f $rules.Count, $Path)
}
else {
    $json
}
