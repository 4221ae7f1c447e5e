# configmgr.nap win_nap_firewall, state: rendered: the part the COM and the NetSecurity scripts share.
# windows_render.py puts it after the requirement checks and before the rule data; ASCII only.
# Read and compare through HNetCfg.FwPolicy2 (one pass over the rule collection, ports and addresses
# on each rule): https://learn.microsoft.com/en-us/windows/win32/api/netfw/nn-netfw-inetfwpolicy2

$principal = New-Object -TypeName Security.Principal.WindowsPrincipal -ArgumentList ([Security.Principal.WindowsIdentity]::GetCurrent())
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
    Write-Output 'configmgr.nap: run this script as an administrator (an elevated PowerShell); nothing was changed'
    exit 3
}
$ErrorActionPreference = 'Stop'
$wanted = New-Object -TypeName System.Collections.ArrayList

function Add-NapRule {
    param ([string]$Name, [string]$Description, [int]$Direction, [int]$Protocol, [string]$LocalPorts,
        [string]$RemotePorts, [string]$LocalAddresses, [string]$RemoteAddresses, [int]$Profiles,
        [string]$IcmpTypesAndCodes = '')
    [void]$wanted.Add(@{ Name = $Name; Description = $Description; Direction = $Direction; Protocol = $Protocol;
        LocalPorts = $LocalPorts; RemotePorts = $RemotePorts; LocalAddresses = $LocalAddresses;
        RemoteAddresses = $RemoteAddresses; Profiles = $Profiles; IcmpTypesAndCodes = $IcmpTypesAndCodes })
}

# A rule as the COM API holds it, not added to the store: what an owned rule is compared with (Windows
# writes addresses and ports back in its own form, so both sides are read from a rule object).
# INetFwRule::put_Protocol: Protocol must be set before LocalPorts and RemotePorts.
# https://learn.microsoft.com/en-us/windows/win32/api/netfw/nf-netfw-inetfwrule-put_protocol
function New-NapComRule {
    param ($Spec)
    $rule = New-Object -ComObject HNetCfg.FWRule
    $rule.Name = $Spec.Name
    $rule.Description = $Spec.Description
    $rule.Grouping = $group
    $rule.Direction = $Spec.Direction
    $rule.Protocol = $Spec.Protocol
    # "type:code" list, '*' for all (INetFwRule::IcmpTypesAndCodes); only on an ICMPv4 (1) or ICMPv6 (58) rule
    if ($Spec.IcmpTypesAndCodes) { $rule.IcmpTypesAndCodes = $Spec.IcmpTypesAndCodes }
    if ($Spec.LocalPorts -ne '*') { $rule.LocalPorts = $Spec.LocalPorts }
    if ($Spec.RemotePorts -ne '*') { $rule.RemotePorts = $Spec.RemotePorts }
    if ($Spec.LocalAddresses -ne '*') { $rule.LocalAddresses = $Spec.LocalAddresses }
    if ($Spec.RemoteAddresses -ne '*') { $rule.RemoteAddresses = $Spec.RemoteAddresses }
    $rule.Profiles = $Spec.Profiles
    $rule.Action = 1
    $rule.Enabled = $true
    $rule
}

# The properties an update writes, in this order (Protocol before the ports).
$napProperties = @('Name', 'Grouping', 'Description', 'Direction', 'Protocol', 'LocalPorts', 'RemotePorts',
    'LocalAddresses', 'RemoteAddresses', 'Profiles', 'Action', 'Enabled', 'ApplicationName', 'ServiceName',
    'EdgeTraversal', 'InterfaceTypes', 'IcmpTypesAndCodes')

function Get-NapDifferences {
    param ($Have, $Want)
    $out = @()
    foreach ($property in $napProperties) {
        if ($property -eq 'Name' -or $property -eq 'Description') {
            if ([string]$Have.$property -cne [string]$Want.$property) { $out += $property }
        }
        elseif ($property -eq 'Profiles') {
            # 7 and 0x7FFFFFFF (NET_FW_PROFILE2_ALL) select the same three profiles
            if (([int]$Have.Profiles -band 7) -ne ([int]$Want.Profiles -band 7)) { $out += $property }
        }
        elseif ([string]$Have.$property -ne [string]$Want.$property) {
            $out += $property
        }
    }
    $out
}

# INetFwRules::Item fails when no rule has the name:
# https://learn.microsoft.com/en-us/windows/win32/api/netfw/nf-netfw-inetfwrules-item
function Get-NapRuleByName {
    param ([string]$Name)
    try { $policy.Rules.Item($Name) } catch { $null }
}

function Test-NapGuard {
    # The rules of this script that admit the management sources on the management port, in place and
    # as written; '' when they are, else why not (naming the rule).
    if ($guardProblem) { return $guardProblem }
    foreach ($name in $guardRules) {
        $spec = $null
        foreach ($candidate in $wanted) { if ($candidate.Name -eq $name) { $spec = $candidate } }
        $have = Get-NapRuleByName -Name $name
        if ($null -eq $have -or $null -eq $spec) {
            return "the rule '$name' that admits TCP $managementPort from $($managementSources -join ', ') is not on the host"
        }
        $differences = @(Get-NapDifferences -Have $have -Want (New-NapComRule -Spec $spec))
        if ($differences.Count -gt 0) {
            return ("the rule '$name' that admits TCP $managementPort from $($managementSources -join ', ') " +
                "is not in place (differs in $($differences -join ', '))")
        }
    }
    ''
}

function Read-NapRules {
    # One pass over the rule collection: the owned rules by name, the rules to adopt (an empty Grouping
    # and exactly a wanted name: netsh cannot set a group) and the rules that carry an owned name outside
    # the group (the COM API removes by name, so those names are not touched).
    $state = @{ Owned = @{}; Order = (New-Object -TypeName System.Collections.ArrayList); Outside = @() }
    $names = @{}
    foreach ($spec in $wanted) { $names[$spec.Name] = $spec.Name }
    foreach ($rule in $policy.Rules) {
        $name = [string]$rule.Name
        $grouping = [string]$rule.Grouping
        $adopt = ($grouping -eq '' -and $names.ContainsKey($name) -and $names[$name] -ceq $name)
        if ($grouping -eq $group -or $adopt) {
            if (-not $state.Owned.ContainsKey($name)) {
                $state.Owned[$name] = New-Object -TypeName System.Collections.ArrayList
                [void]$state.Order.Add($name)
            }
            [void]$state.Owned[$name].Add($rule)
        }
        elseif ($names.ContainsKey($name) -or $name.StartsWith($namePrefix, [StringComparison]::OrdinalIgnoreCase)) {
            $state.Outside += $rule
        }
    }
    $clash = @()
    foreach ($rule in $state.Outside) {
        if ($names.ContainsKey([string]$rule.Name) -or $state.Owned.ContainsKey([string]$rule.Name)) {
            $clash += "'$($rule.Name)' (group '$($rule.Grouping)')"
        }
    }
    $state.Collisions = $clash
    $state
}
